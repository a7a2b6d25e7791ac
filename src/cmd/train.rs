use clap::Args;

#[derive(Args)]
pub struct TrainArgs {}

pub fn run(_args: TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("tlearn train: not implemented yet")
}
