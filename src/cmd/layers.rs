use clap::Args;

#[derive(Args)]
pub struct LayersArgs {}

pub fn run(_args: LayersArgs) -> anyhow::Result<()> {
    anyhow::bail!("tlearn layers: not implemented yet")
}
