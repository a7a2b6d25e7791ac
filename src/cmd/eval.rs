use clap::Args;

#[derive(Args)]
pub struct EvalArgs {}

pub fn run(_args: EvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("tlearn eval: not implemented yet")
}
