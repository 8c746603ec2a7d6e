//! `tendon workflow schematic` and `workflow simulate --format` end to end on
//! both backends, through the real binary: the org's workflows drawn as one
//! self-contained file, and a patient's timeline as a picture, the same one
//! for the same data.
mod common;

use common::{Backend, Clinic, Tendon};

#[test]
fn schematics_on_the_local_backend() {
    schematic_and_timeline(Backend::Local);
}

#[test]
fn schematics_on_the_aws_backend() {
    schematic_and_timeline(Backend::Aws);
}

fn schematic_and_timeline(backend: Backend) {
    let mut t = Tendon::new(backend, "schematic");
    let key = t.clinic("ACME01").key;
    t.ok(&["workflow", "install-defaults", "--org", "ACME01"]);
    t.ok(&[
        "workflow",
        "deactivate",
        "--org",
        "ACME01",
        "--id",
        "nps-cliniko",
    ]);

    // The org's schematic, as HTML by the file's extension.
    let out = t.db().with_extension("schematic.html");
    let written = t.ok(&[
        "workflow",
        "schematic",
        "--org",
        "ACME01",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(written["format"], "html");
    assert_eq!(written["workflows"], 12);
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written["bytes"], html.len());
    assert!(html.starts_with("<!DOCTYPE html>") && !html.contains("<script"));
    assert!(html.contains("<title>Messaging workflows of ACME01 PT</title>"));
    let listed = t.ok(&["workflow", "list", "--org", "ACME01"]);
    for w in listed.as_array().unwrap() {
        let id = w["id"].as_str().unwrap();
        let steps = w["steps"].as_array().unwrap().len();
        let drawn = html
            .matches(&format!(r#"data-workflow="{id}" data-step="#))
            .count();
        assert_eq!(drawn, steps, "{id}: every step drawn");
    }
    assert_eq!(
        html.matches(r#"data-status="inactive""#).count(),
        1,
        "nps-cliniko is drawn inactive"
    );
    // Stdout as SVG, the same drawing.
    let out = t
        .command()
        .args([
            "workflow",
            "schematic",
            "--org",
            "ACME01",
            "--format",
            "svg",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(svg.starts_with("<svg ") && html.contains(svg.trim_end()));

    // A patient's timeline.
    t.serve();
    let c = Clinic {
        t: &t,
        org: "ACME01".to_owned(),
        key,
    };
    c.send_accepted([&c.siu("M1")]);
    c.settle();
    let simulate = [
        "workflow",
        "simulate",
        "--org",
        "ACME01",
        "--patient",
        "P555",
    ];
    let entries = t.ok(&simulate);
    let entries = entries.as_array().unwrap();
    assert!(!entries.is_empty());
    let args = [
        &simulate[..],
        &["--format", "svg", "--at", "2026-12-07T18:00:00Z"],
    ]
    .concat();
    let drawn = t.ok(&args);
    let document = drawn["document"].as_str().unwrap();
    assert_eq!(drawn["entries"], entries.len());
    assert_eq!(document.matches("data-entry=").count(), entries.len());
    assert!(
        document.contains("Workflow timeline of patient P555")
            && document.contains("Now · Mon 7 Dec 2026 10:00")
    );
    let again = t.ok(&args);
    assert_eq!(
        again["document"], drawn["document"],
        "same data, same bytes"
    );

    // Clear refusals.
    let (ok, _, err) = t.cli(&["workflow", "schematic", "--org", "NOPE"]);
    assert!(!ok && err.contains("no org \"NOPE\""), "{err}");
    let (ok, _, err) = t.cli(&[
        "workflow",
        "simulate",
        "--org",
        "ACME01",
        "--patient",
        "P9",
        "--format",
        "svg",
    ]);
    assert!(!ok && err.contains("no patient \"P9\""), "{err}");
    let (ok, _, err) = t.cli(&[
        "workflow",
        "schematic",
        "--org",
        "ACME01",
        "--format",
        "pdf",
    ]);
    assert!(!ok && err.contains("pdf"), "{err}");
}
