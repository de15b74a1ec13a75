//! The README's configuration tables and the binaries' settings say the
//! same thing: every variable a binary reads is in its table, with the
//! default the binary uses; every variable in a table is read by one of
//! the binaries the table is for; `--help` lists every variable and shows
//! no secret.

use std::collections::{BTreeMap, BTreeSet};

use clap::{Arg, ArgAction, Command};
use tincan_settings::command;

/// Every binary, by the name the README's headings give it.
fn binaries() -> BTreeMap<&'static str, Command> {
    BTreeMap::from([
        ("tincan-local", command::<tincan_local::LocalSettings>()),
        (
            "tincan-media-node",
            command::<tincan_media_node::settings::Settings>(),
        ),
        ("ws-connect", command::<tincan_functions::ConnectSettings>()),
        (
            "ws-disconnect",
            command::<tincan_functions::HistorySettings>(),
        ),
        ("ws-default", command::<tincan_functions::HistorySettings>()),
        ("ws-sweep", command::<tincan_functions::HistorySettings>()),
        ("http-api", command::<tincan_functions::HttpApiSettings>()),
    ])
}

/// Variables whose values are secrets.
fn is_secret(name: &str) -> bool {
    name.contains("SECRET") || name == "TINCAN_API_KEYS" || name == "MONGODB_URI"
}

/// One row of a configuration table: its variables and its default cell.
#[derive(Debug)]
struct Row {
    vars: Vec<String>,
    default: String,
}

/// A configuration table: the binaries its heading names, and its rows.
#[derive(Debug)]
struct Table {
    heading: String,
    binaries: Vec<String>,
    rows: Vec<Row>,
}

/// The text of each `code span` in `cell`, in order.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}

/// The `| variable | default | meaning |` tables of the README's
/// `## Configuration` section, one per `###` heading.
fn readme_tables() -> Vec<Table> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("\n## Configuration\n")
        .expect("a Configuration section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let names = binaries();
    let mut tables = Vec::new();
    for part in section.split("\n### ").skip(1) {
        let heading = part.lines().next().unwrap_or_default().to_owned();
        let mut lines = part.lines().skip_while(|l| !l.starts_with("| variable |"));
        if lines.next().is_none() {
            continue;
        }
        let rows = lines
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.split(" | ").collect();
                Row {
                    vars: code_spans(cells[0]),
                    default: cells[1].trim().to_owned(),
                }
            })
            .collect();
        let binaries = code_spans(&heading)
            .into_iter()
            .filter(|b| names.contains_key(b.as_str()))
            .collect::<Vec<_>>();
        assert!(
            !binaries.is_empty(),
            "the table under \"### {heading}\" names no binary in its heading"
        );
        tables.push(Table {
            heading,
            binaries,
            rows,
        });
    }
    tables
}

/// The arguments of `cmd` that read a variable.
fn env_args(cmd: &Command) -> impl Iterator<Item = (String, &Arg)> {
    cmd.get_arguments().filter_map(|arg| {
        let name = arg.get_env()?.to_str()?.to_owned();
        Some((name, arg))
    })
}

/// What the README's default cell must say for `arg`, if anything.
fn check_default(binary: &str, var: &str, arg: &Arg, readme: &str) -> Option<String> {
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let first = code_spans(readme).into_iter().next();
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return (!readme.starts_with("off")).then(|| {
            format!("{binary}: {var} is a switch, off by default; README says {readme:?}")
        });
    }
    if defaults.is_empty() {
        // No default in the code: the README must not claim a literal one.
        let literal =
            readme.starts_with('`') && readme.ends_with('`') && code_spans(readme).len() == 1;
        return literal.then(|| {
            format!("{binary}: {var} has no default in the code; README says {readme:?}")
        });
    }
    let code = defaults.join(",");
    (first.as_deref() != Some(code.as_str())).then(|| {
        format!("{binary}: {var} defaults to `{code}` in the code; README says {readme:?}")
    })
}

#[test]
fn the_readme_tables_match_every_binarys_settings() {
    let binaries = binaries();
    let tables = readme_tables();
    let mut problems = Vec::new();
    let mut tabled = BTreeSet::new();
    for table in &tables {
        let mut rows: BTreeMap<&str, &str> = BTreeMap::new();
        for row in &table.rows {
            for var in &row.vars {
                if rows.insert(var, &row.default).is_some() {
                    problems.push(format!("\"{}\": {var} is listed twice", table.heading));
                }
            }
        }
        for binary in &table.binaries {
            tabled.insert(binary.clone());
            for (var, arg) in env_args(&binaries[binary.as_str()]) {
                match rows.get(var.as_str()) {
                    None => problems.push(format!(
                        "{binary} reads {var}, which the table under \"{}\" does not list",
                        table.heading
                    )),
                    Some(readme) => problems.extend(check_default(binary, &var, arg, readme)),
                }
            }
        }
        for var in rows.keys() {
            let read = table
                .binaries
                .iter()
                .any(|b| env_args(&binaries[b.as_str()]).any(|(name, _)| name == *var));
            if !read {
                problems.push(format!(
                    "the table under \"{}\" lists {var}, which none of {:?} reads",
                    table.heading, table.binaries
                ));
            }
        }
    }
    for binary in binaries.keys() {
        if !tabled.contains(*binary) {
            problems.push(format!("{binary} has no configuration table in the README"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn help_lists_every_variable_and_no_secret() {
    for (binary, mut cmd) in binaries() {
        let help = cmd.render_long_help().to_string();
        for (var, arg) in env_args(&cmd) {
            assert!(!arg.is_hide_set(), "{binary}: {var} is hidden from --help");
            assert!(help.contains(&var), "{binary} --help does not list {var}");
            if is_secret(&var) {
                assert!(
                    arg.is_hide_env_values_set() && arg.get_default_values().is_empty(),
                    "{binary}: the secret {var} could show in --help"
                );
            }
        }
    }
}
