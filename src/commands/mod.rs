//! The binary's subcommands besides serving: `export-schema`, `token …` and `run …`.
//!
//! `metric-vault token create --name NAME --role ROLE` is the first-run way to get a token
//! without one already: it writes to the configured database directly and prints the new
//! token (only the token, on stdout, so scripts can capture it).
//!
//! `metric-vault run --plan P --server URL --wait` is the CI gate: the binary as a client of a
//! running server (see [`run`]).

pub mod run;

use anyhow::{Context, bail};

use crate::{
    access::{Role, issue_token},
    config::Settings,
    db::{connect_and_migrate, repo},
};

const TOKEN_USAGE: &str = "usage: metric-vault token create --name NAME --role VIEWER|OPERATOR|ADMIN\n       metric-vault token list";

/// Runs `token <args>` against the database of `settings`.
pub async fn token(settings: &Settings, args: &[String]) -> anyhow::Result<()> {
    let (db, _) = connect_and_migrate(&settings.database_url).await.context("opening the database")?;
    match args.first().map(String::as_str) {
        Some("create") => {
            let name = flag(args, "--name").map(str::trim).filter(|n| !n.is_empty()).context(TOKEN_USAGE)?;
            let role = flag(args, "--role").unwrap_or("ADMIN");
            let role = Role::parse(role).with_context(|| format!("unknown role `{role}`\n{TOKEN_USAGE}"))?;
            let (token, record) = issue_token(&db, name, role).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            eprintln!(
                "created API token {} `{}` with role {}; it is shown only now:",
                record.id,
                record.name,
                role.as_str()
            );
            println!("{token}");
        }
        Some("list") => {
            for token in repo::api_tokens::list(&db).await.map_err(|e| anyhow::anyhow!("{e:?}"))? {
                let state = token.revoked_at.map_or("live".to_owned(), |at| format!("revoked {at}"));
                println!(
                    "{}\t{}\t{}\t{}…\t{state}",
                    token.id,
                    token.role.as_str(),
                    token.name,
                    token.token_prefix
                );
            }
        }
        _ => bail!("{TOKEN_USAGE}"),
    }
    db.close().await.ok();
    Ok(())
}

/// The value after `name` (`--name x`), or of `name=x`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, arg)| {
        if arg == name {
            args.get(i + 1).map(String::as_str)
        } else {
            arg.strip_prefix(name)?.strip_prefix('=')
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_in_both_spellings() {
        let args: Vec<String> = ["create", "--name", "ci bot", "--role=operator"].map(String::from).to_vec();
        assert_eq!(flag(&args, "--name"), Some("ci bot"));
        assert_eq!(flag(&args, "--role"), Some("operator"));
        assert_eq!(flag(&args, "--missing"), None);
    }
}
