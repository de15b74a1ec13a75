//! How every Tincan binary reads its settings: one `#[derive(clap::Parser)]`
//! struct per binary, each field a flag that also reads an environment
//! variable (`#[arg(long, env = "TINCAN_...")]`), its default written once,
//! in that attribute. `--help` lists them all. The groups several binaries
//! share are `#[derive(clap::Args)]` structs, flattened into each binary's
//! settings: the signaling limits and the DynamoDB settings here, the
//! account settings in `tincan-accounts`.
//!
//! [`parse`] reads a command-line binary's settings (flags over the
//! environment); [`from_env`] reads a Lambda function's from the environment
//! alone. Both treat a variable set to the empty string as unset (so a
//! template can leave one blank), and both name the variable in an error:
//! each flag's value is shown as its variable, `--max-message
//! <TINCAN_MAX_MESSAGE>`. A secret is a [`Secret`] with
//! `hide_env_values = true`: its value is never parsed in a way that can
//! fail (a clap error would quote it), shown in `--help`, or printed by
//! `Debug`.

mod secret;
mod signaling;

pub use clap;

pub use crate::secret::Secret;
pub use crate::signaling::{SignalingSettings, DEFAULT_MESH_MAX};

use std::ffi::OsString;

use clap::{Arg, Command};

/// The default of `TINCAN_CONNECTIONS_TABLE`, the signaling's DynamoDB table
/// of connections and rooms.
pub const DEFAULT_CONNECTIONS_TABLE: &str = "tincan-connections";

/// Where the DynamoDB tables are: AWS's endpoint, unless overridden.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DynamoSettings {
    /// A DynamoDB endpoint to use instead of AWS's (moto, DynamoDB Local);
    /// with it and no `AWS_ACCESS_KEY_ID`, requests are signed with dummy
    /// credentials.
    #[arg(long, env = "DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
}

/// The signaling's table of connections and rooms, with its default.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionsTable {
    /// DynamoDB table of connections and rooms.
    #[arg(long, env = "TINCAN_CONNECTIONS_TABLE", default_value = DEFAULT_CONNECTIONS_TABLE)]
    pub connections_table: String,
}

impl Default for ConnectionsTable {
    fn default() -> Self {
        Self {
            connections_table: DEFAULT_CONNECTIONS_TABLE.to_owned(),
        }
    }
}

/// `S`'s command as the binaries parse with it: every flag's value named
/// after its variable, and a variable set to `""` treated as unset.
pub fn command<S: clap::CommandFactory>() -> Command {
    S::command().mut_args(|arg| prepare(arg, |name| std::env::var_os(name)))
}

fn prepare(arg: Arg, var: impl Fn(&std::ffi::OsStr) -> Option<OsString>) -> Arg {
    let Some(name) = arg.get_env().map(ToOwned::to_owned) else {
        return arg;
    };
    let takes_value = arg.get_num_args().is_none_or(|n| n.takes_values());
    let arg = if takes_value && !is_flag(&arg) {
        arg.value_name(name.to_string_lossy().into_owned())
    } else {
        arg
    };
    if var(&name).is_some_and(|v| v.is_empty()) {
        // Read it no more: unset, so the default applies.
        arg.env(None::<&str>)
    } else {
        arg
    }
}

fn is_flag(arg: &Arg) -> bool {
    matches!(
        arg.get_action(),
        clap::ArgAction::SetTrue | clap::ArgAction::SetFalse | clap::ArgAction::Count
    )
}

/// A command-line binary's settings: its flags, over its environment. On a
/// bad value, prints the error (naming the variable) and exits with 2;
/// `--help` prints every setting and exits with 0.
pub fn parse<S: clap::Parser>() -> S {
    let mut cmd = command::<S>();
    let matches = cmd.get_matches_mut();
    S::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
}

/// A Lambda function's settings, from its environment alone: the Lambda
/// runtime passes no arguments. The one argument taken is `--help` (or
/// `-h`), which prints every setting; any other is an error.
pub fn from_env<S: clap::Parser>(bin: &str) -> Result<S, clap::Error> {
    from_env_with(bin, std::env::args_os().skip(1))
}

fn from_env_with<S: clap::Parser>(
    bin: &str,
    args: impl IntoIterator<Item = OsString>,
) -> Result<S, clap::Error> {
    let mut cmd = command::<S>().name(bin.to_owned()).bin_name(bin.to_owned());
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(other) = args.iter().find(|a| *a != "--help" && *a != "-h") {
        let message = format!(
            "unexpected argument '{}': {bin} reads its settings from the environment \
             alone (--help lists them)\n",
            other.to_string_lossy()
        );
        return Err(
            clap::Error::raw(clap::error::ErrorKind::UnknownArgument, message).with_cmd(&cmd),
        );
    }
    let matches = cmd.try_get_matches_from_mut(std::iter::once(OsString::from(bin)).chain(args))?;
    S::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// [`from_env`], exiting as [`parse`] does on an error or `--help`: what a
/// Lambda's `main` calls first.
pub fn from_env_or_exit<S: clap::Parser>(bin: &str) -> S {
    from_env(bin).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Example {
        /// A number.
        #[arg(long, env = "TINCAN_SETTINGS_TEST_NUMBER", default_value_t = 7)]
        number: u32,
        /// A secret.
        #[arg(long, env = "TINCAN_SETTINGS_TEST_SECRET", hide_env_values = true)]
        secret: Option<Secret>,
        /// A switch.
        #[arg(long, env = "TINCAN_SETTINGS_TEST_SWITCH")]
        switch: bool,
    }

    #[test]
    fn a_value_is_named_after_its_variable_and_a_blank_one_is_unset() {
        let cmd = Example::command().mut_args(|a| {
            prepare(a, |n| {
                (n == "TINCAN_SETTINGS_TEST_NUMBER").then(OsString::new)
            })
        });
        let number = cmd
            .get_arguments()
            .find(|a| a.get_id() == "number")
            .unwrap();
        assert_eq!(
            number.get_value_names().unwrap()[0].as_str(),
            "TINCAN_SETTINGS_TEST_NUMBER"
        );
        assert_eq!(number.get_env(), None, "blank: read no more");
        let switch = cmd
            .get_arguments()
            .find(|a| a.get_id() == "switch")
            .unwrap();
        assert!(
            switch
                .get_value_names()
                .is_none_or(|n| n[0] != "TINCAN_SETTINGS_TEST_SWITCH"),
            "a switch takes no value"
        );
    }

    #[test]
    fn an_error_names_the_variable_and_help_shows_no_secret() {
        let err = Example::try_parse_from(["example"]).unwrap();
        assert_eq!(err.number, 7);
        let mut cmd = command::<Example>();
        let err = cmd
            .try_get_matches_from_mut(["example", "--number", "x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TINCAN_SETTINGS_TEST_NUMBER"), "{err}");
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("TINCAN_SETTINGS_TEST_SECRET"), "{help}");
    }

    #[test]
    fn a_lambda_takes_help_and_nothing_else() {
        let err = from_env_with::<Example>("example", [OsString::from("--help")]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        let err = from_env_with::<Example>("example", [OsString::from("--number=3")]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
