use clap::Args;

#[derive(Args)]
pub struct PredictArgs {}

pub fn run(_args: PredictArgs) -> anyhow::Result<()> {
    anyhow::bail!("tlearn predict: not implemented yet")
}
