use std::path::PathBuf;

use sealtrail_runtime::keys::init_key_dir;

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create the signing and tokenization keys in a directory, if missing, and publish the
    /// signing key's public half under `<dir>/trusted/`.
    Init {
        #[arg(long, env = "SEALTRAIL_KEY_DIR", default_value = ".sealtrail/keys")]
        dir: PathBuf,
    },
}

pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Init { dir } => {
            let keys = init_key_dir(&dir)?;
            let state = if keys.created { "created" } else { "already present" };
            println!("keys {state} in {}", dir.display());
            println!(
                "  checkpoint signing key {} (key id {})",
                keys.signing_key.display(),
                keys.key_id
            );
            println!("  tokenization key       {}", keys.tokenization_key.display());
            println!(
                "  trusted public keys    {} (give these to verifiers)",
                keys.trusted.display()
            );
            Ok(())
        }
    }
}
