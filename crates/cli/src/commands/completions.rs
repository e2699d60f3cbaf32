//! `rvbbit completions bash|zsh|fish`: print a shell completion script generated from the clap
//! definitions.

use clap::CommandFactory;
use clap_complete::Shell;

use super::Outcome;
use crate::cli::Cli;
use crate::output;

/// Arguments of `rvbbit completions`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Install:\n  \
    bash: rvbbit completions bash > ~/.local/share/bash-completion/completions/rvbbit\n  \
    zsh:  rvbbit completions zsh > ~/.zfunc/_rvbbit   (with fpath+=~/.zfunc before compinit)\n  \
    fish: rvbbit completions fish > ~/.config/fish/completions/rvbbit.fish")]
pub(crate) struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Target,
}

/// The shells completion scripts are generated for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Target {
    /// Bash (3.2 or later, with bash-completion).
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
}

pub(crate) fn run(args: &Args) -> Outcome {
    let shell = match args.shell {
        Target::Bash => Shell::Bash,
        Target::Zsh => Shell::Zsh,
        Target::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rvbbit", &mut script);
    output::stdout(&String::from_utf8_lossy(&script))?;
    Ok(0)
}
