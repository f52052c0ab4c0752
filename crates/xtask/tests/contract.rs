//! The stacks against the code: cfn-lint passes both templates, and for every function the
//! template sets only variables its loader reads (and enough for it to load), and its role
//! allows exactly the actions its crate declares.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use audit_core::Env;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use xtask::{functions_in_stack, role_actions, template_environment};

fn template(path: &str) -> Value {
    let venv = devstack::python_tools().unwrap();
    let out = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import json, sys\nfrom cfnlint.decode import decode\nt, m = decode(sys.argv[1])\nassert not m, m\nprint(json.dumps(t))",
        ])
        .arg(devstack::repo_root().join(path))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn cfn_lint_passes_both_templates_without_errors_or_warnings() {
    let venv = devstack::python_tools().unwrap();
    let root = devstack::repo_root();
    let out = Command::new(venv.join("bin/cfn-lint"))
        .arg(root.join("infra-ecr/template.yaml"))
        .arg(root.join("infra-main/template.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn each_function_gets_only_variables_its_loader_reads_and_enough_to_load() {
    let template = template("infra-main/template.yaml");
    for function in functions_in_stack() {
        let vars = template_environment(&template, function.function_logical_id);
        assert!(
            !vars.is_empty(),
            "{}: no environment in the template",
            function.name
        );
        let declared: BTreeSet<&str> = function.environment.iter().copied().collect();
        for (name, _) in &vars {
            assert!(
                declared.contains(name.as_str()),
                "{}: the template sets {name}, which the code never reads",
                function.name
            );
        }
        let env = Env::from_pairs(vars.clone());
        if let Err(e) = (function.load)(&env) {
            panic!(
                "{}: the template's environment does not load: {e}",
                function.name
            );
        }
    }
}

#[test]
fn each_role_allows_exactly_what_its_function_calls() {
    let template = template("infra-main/template.yaml");
    for function in functions_in_stack() {
        let granted = role_actions(&template, function.role_logical_id);
        let needed: BTreeSet<String> = function
            .iam_actions
            .iter()
            .chain(function.event_source_actions)
            .map(|a| (*a).to_owned())
            .collect();
        assert_eq!(
            granted, needed,
            "{}: role actions differ from the code's",
            function.name
        );
    }
}

#[test]
fn the_dev_config_sets_only_parameters_the_template_has() {
    let template = template("infra-main/template.yaml");
    let config: Value = serde_json::from_slice(
        &std::fs::read(devstack::repo_root().join("infra-main/config/dev.json")).unwrap(),
    )
    .unwrap();
    let parameters = template["Parameters"].as_object().unwrap();
    for (name, _) in config["Parameters"].as_object().unwrap() {
        assert!(
            parameters.contains_key(name),
            "dev.json sets unknown parameter {name}"
        );
    }
    for (name, parameter) in parameters {
        assert!(
            parameter.get("Default").is_some() || config["Parameters"].get(name).is_some(),
            "dev.json must set {name} (no default)"
        );
    }
}

#[test]
fn checkov_passes_both_templates_and_every_skip_says_why() {
    let venv = devstack::python_tools().unwrap();
    let root = devstack::repo_root();
    let out = Command::new(venv.join("bin/checkov"))
        .args(["--framework", "cloudformation", "--quiet", "--compact"])
        .arg("-d")
        .arg(root.join("infra-ecr"))
        .arg("-d")
        .arg(root.join("infra-main"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "checkov:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for path in ["infra-ecr/template.yaml", "infra-main/template.yaml"] {
        let template = template(path);
        for (name, resource) in template["Resources"].as_object().unwrap() {
            for skip in resource["Metadata"]["checkov"]["skip"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let reason = skip["comment"].as_str().unwrap_or_default();
                assert!(
                    reason.len() > 40,
                    "{path} {name}: skip {} needs a written reason",
                    skip["id"]
                );
            }
        }
    }
}
