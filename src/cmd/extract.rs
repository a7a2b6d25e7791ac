use clap::Args;

#[derive(Args)]
pub struct ExtractArgs {}

pub fn run(_args: ExtractArgs) -> anyhow::Result<()> {
    anyhow::bail!("tlearn extract: not implemented yet")
}
