//! schemathesis (property-based, from the OpenAPI document) against the real `audit-api
//! serve` binary: thousands of generated requests, valid and invalid, and not one 5xx.

use devstack::audit_api::AuditApiServer;
use std::process::Command;

const KEY: &str = "schemathesis-key-0123456789";

#[test]
fn generated_requests_never_get_a_server_error() {
    let venv = devstack::python_tools().expect("python tools");
    let server = AuditApiServer::start(KEY, &[]).expect("audit-api serve");
    let report = devstack::scratch_dir("schemathesis").expect("scratch");
    let output = Command::new(venv.join("bin/schemathesis"))
        .current_dir(&report)
        .args([
            "run",
            &format!("{}/openapi.json", server.base_url),
            "--checks",
            "not_a_server_error",
            "--header",
            &format!("CSIQ-APIKEY: {KEY}"),
            "--max-examples",
            "40",
            "--seed",
            "20261123",
            // One worker: with two, Hypothesis parses lambda sources (`ast.parse`) in two
            // threads at once, which CPython before 3.11.8 / 3.12.2 can fail with "SystemError:
            // AST constructor recursion depth mismatch" (CPython issue 106905) -- a crash of the
            // tool, reported as a runtime error, not an answer of the service.
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--generation-allow-x00",
            "true",
            // A loaded CI machine must not turn a slow answer into a "runtime error".
            "--request-timeout",
            "60",
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{stderr}\nserver log:\n{log}"
    );
    // It did test every operation (a run that tested nothing would also succeed), and some
    // generated events were valid enough to be stored.
    assert!(
        stdout.contains("Tested: 8"),
        "not every operation tested:\n{stdout}"
    );
    let stored: i64 = devstack::postgres()
        .psql(&server.database, "SELECT count(*) FROM auditevents")
        .expect("count")
        .parse()
        .expect("number");
    assert!(stored > 0, "no generated event was accepted:\n{stdout}");
}
