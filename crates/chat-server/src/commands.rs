//! The command line: `hihichat serve`, `user …`, `grant`, `revoke`,
//! `permission …` and `bot train`, and what each does.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing::info;

use crate::settings::{Flags, SettingError, Settings};
use crate::startup::{Application, Wired, wire};

/// hihichat: a self-hostable web chat server.
#[derive(Debug, Parser)]
#[command(name = "hihichat", version, about, propagate_version = true)]
pub struct Cli {
    /// Settings every command shares.
    #[command(flatten)]
    pub common: CommonArgs,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every command accepts, before or after the subcommand.
#[derive(Debug, Args, Default)]
pub struct CommonArgs {
    /// SQLite database URL [env: CHAT_DATABASE_URL] [default: sqlite://data/hihichat.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// Redis URL for multi-node mode [env: CHAT_REDIS_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub redis: Option<String>,
    /// A TOML config file layered over config/default.toml [env: CHAT_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the chat server.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Give a user a permission.
    Grant {
        /// The user.
        name: String,
        /// The permission (admin, create_room, moderate, or one you defined).
        perm: String,
    },
    /// Take a permission from a user.
    Revoke {
        /// The user.
        name: String,
        /// The permission.
        perm: String,
    },
    /// Manage permission names.
    #[command(subcommand)]
    Permission(PermissionCommand),
    /// Manage the guests' bot.
    #[command(subcommand)]
    Bot(BotCommand),
}

/// `hihichat serve` flags.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [env: CHAT_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Messages per user per room, like 10/s,burst=20, or off [env: CHAT_RATE_LIMIT]
    #[arg(long, value_name = "SPEC")]
    pub rate_limit: Option<String>,
    /// Delete messages older than this (30s, 15m, 12h, 7d; 0 keeps all) [env: CHAT_RETENTION]
    #[arg(long, value_name = "AGE")]
    pub retention: Option<String>,
    /// How long a silent connection or a dead node's users stay online (at least 3s) [env: CHAT_PRESENCE_TIMEOUT] [default: 60s]
    #[arg(long, value_name = "AGE")]
    pub presence_timeout: Option<String>,
}

/// `hihichat user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        /// The username.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Grant a permission (repeatable).
        #[arg(long = "grant", value_name = "PERM")]
        grants: Vec<String>,
    },
    /// Set a user's password (their sessions end).
    Passwd {
        /// The username.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user (their sessions end).
    Del {
        /// The username.
        name: String,
    },
    /// List users with their creation time and permissions.
    List,
}

/// `hihichat permission …`.
#[derive(Debug, Subcommand)]
pub enum PermissionCommand {
    /// Define a new permission name.
    Add {
        /// The permission (a-z, 0-9, '_', '-').
        name: String,
    },
    /// List the defined permissions.
    List,
}

/// `hihichat bot …`.
#[derive(Debug, Subcommand)]
pub enum BotCommand {
    /// Add the question/answer pairs of FILE to the bot's corpus.
    Train {
        /// A corpus file: `Q:` lines followed by `A:` lines, blocks separated by blank lines.
        file: PathBuf,
    },
}

impl Cli {
    /// The setting overrides these flags carry.
    pub fn flags(&self) -> Flags {
        let serve = match &self.command {
            Some(Command::Serve(s)) => Some(s),
            _ => None,
        };
        Flags {
            listen: serve.and_then(|s| s.listen.clone()),
            database: self.common.database.clone(),
            redis: self.common.redis.clone(),
            config: self.common.config.clone(),
            rate_limit: serve.and_then(|s| s.rate_limit.clone()),
            retention: serve.and_then(|s| s.retention.clone()),
            presence_timeout: serve.and_then(|s| s.presence_timeout.clone()),
        }
    }
}

/// Runs the parsed command line to completion: prints one `error: …` line to
/// standard error and returns a failure code on any error.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&describe(&e)),
    }
}

fn fail(line: &str) -> ExitCode {
    eprintln!("error: {line}");
    ExitCode::FAILURE
}

/// One line for any error: a setting error as is, anything else with its
/// causes joined.
fn describe(e: &anyhow::Error) -> String {
    let text = match e.downcast_ref::<SettingError>() {
        Some(s) => s.to_string(),
        None => format!("{e:#}"),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(&cli.flags())?;
    let command = match cli.command {
        None | Some(Command::Serve(_)) => return serve(settings).await,
        Some(other) => other,
    };
    // Read what the command needs from outside before touching the
    // database, so a typo at the prompt or a missing file changes nothing.
    let input = match &command {
        Command::User(UserCommand::Add { password_stdin, .. })
        | Command::User(UserCommand::Passwd { password_stdin, .. }) => {
            read_password(*password_stdin)?
        }
        Command::Bot(BotCommand::Train { file }) => std::fs::read_to_string(file).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {}",
                file.display(),
                crate::settings::io_reason(&e)
            )
        })?,
        _ => String::new(),
    };
    let wired = wire(&settings).await?;
    let result = admin(&wired, command, &input).await;
    wired.close().await;
    say(result?);
    Ok(())
}

/// Runs one administration command; `input` is its password or file text.
async fn admin(wired: &Wired, command: Command, input: &str) -> anyhow::Result<String> {
    use chat_admin::cli;
    let accounts = &wired.services.accounts;
    Ok(match command {
        Command::Serve(_) => anyhow::bail!("serve is not an administration command"),
        Command::User(UserCommand::Add { name, grants, .. }) => {
            cli::add_user(accounts, &name, input, &grants).await?
        }
        Command::User(UserCommand::Passwd { name, .. }) => {
            cli::set_password(accounts, &name, input).await?
        }
        Command::User(UserCommand::Del { name }) => cli::delete_user(accounts, &name).await?,
        Command::User(UserCommand::List) => cli::list_users(accounts).await?,
        Command::Grant { name, perm } => cli::grant(accounts, &name, &perm).await?,
        Command::Revoke { name, perm } => cli::revoke(accounts, &name, &perm).await?,
        Command::Permission(PermissionCommand::Add { name }) => {
            cli::define_permission(accounts, &name).await?
        }
        Command::Permission(PermissionCommand::List) => cli::list_permissions(accounts).await?,
        Command::Bot(BotCommand::Train { file }) => {
            cli::train_bot(wired.corpus.as_ref(), &file.display().to_string(), input).await?
        }
    })
}

fn say(line: String) {
    println!("{line}");
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    info!(%settings, "starting");
    let app = Application::build(settings).await?;
    app.run_until_stopped(stop_signal()).await
}

/// Completes on SIGTERM or Ctrl-C.
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The new password: the first line of standard input with
/// `--password-stdin` or when standard input is not a terminal; otherwise
/// asked twice at the terminal without echo.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| anyhow::anyhow!("cannot read the password from standard input: {e}"))?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        return Ok(line.to_owned());
    }
    let first = rpassword::prompt_password("New password: ")
        .map_err(|e| anyhow::anyhow!("cannot read the password: {e}"))?;
    let second = rpassword::prompt_password("Repeat it: ")
        .map_err(|e| anyhow::anyhow!("cannot read the password: {e}"))?;
    if first != second {
        anyhow::bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}
