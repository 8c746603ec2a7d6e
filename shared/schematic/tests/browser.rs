//! The drawings in a real browser: headless Chromium (Debian's `chromium`,
//! which `infra/test` installs; `TENDON_CHROMIUM` names another binary).
//!
//! For the default workflows' schematic and a patient's timeline, each as
//! HTML: the page loads without script or parse errors, is exactly the
//! drawing's size, and every label's real text (measured by the browser's
//! own layout, in the fonts it really has) lies inside the box the layout
//! claimed for it, so the "no two boxes overlap" of the structure tests holds
//! for what is on screen. A screenshot of each is checked (size, ink, the
//! task colours) and kept in `target/test-artefacts/schematic/`. The SVG
//! file itself must open as well-formed XML.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tendon_core::workflow::defaults;
use tendon_core::workflow::simulate::TimelineEntry;
use tendon_schematic::{Format, OrgHeading, PatientHeading, schematic, timeline};

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("TENDON_CHROMIUM") {
        return PathBuf::from(path);
    }
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "headless Chromium is needed for the browser tests and was not found: run infra/test \
         (it installs Debian's `chromium`), or `apt-get install chromium`, or set TENDON_CHROMIUM"
    );
}

fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artefacts/schematic");
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// Runs Chromium headless on `page` with `args`, killed if it takes over two
/// minutes; a fresh profile each time.
fn run_chromium(args: &[String], page: &Path) -> Output {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let profile = artefacts().join(format!(
        "profile-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::SeqCst)
    ));
    let child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let pid = child.id();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let out = child.wait_with_output().expect("chromium runs");
    let _ = done.send(());
    watchdog.join().unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn size_of(svg: &str) -> (u32, u32) {
    let attr = |name: &str| -> u32 {
        let start = svg.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        svg[start..].split('"').next().unwrap().parse().unwrap()
    };
    (attr("width"), attr("height"))
}

/// The page's script-free HTML with a probe appended that measures every
/// label as laid out and records the result on `<body data-probe>`.
const PROBE: &str = r#"<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); });
  var labels = Array.prototype.slice.call(document.querySelectorAll('g.label'));
  var outside = [];
  labels.forEach(function (g) {
    var c = g.getAttribute('data-box').split(' ').map(Number);
    var b = g.getBBox();
    if (b.x < c[0] - 1 || b.y < c[1] - 1 || b.x + b.width > c[0] + c[2] + 1 || b.y + b.height > c[1] + c[3] + 1) {
      outside.push({claimed: c, real: [b.x, b.y, b.width, b.height], text: g.textContent});
    }
  });
  document.body.setAttribute('data-probe', JSON.stringify({
    labels: labels.length, outside: outside, errors: errors,
    width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight
  }));
})();
</script>
"#;

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Checks `svg` as an HTML page in Chromium and keeps its screenshot as `name`.png.
fn check_in_browser(name: &str, title: &str, svg: String) {
    let dir = artefacts();
    let (w, h) = size_of(&svg);
    let labels = svg.matches(r#"class="label""#).count();
    let html = Format::Html.render(title, svg.clone());
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, &html).unwrap();

    // Measured by the browser's layout.
    let probe_page = dir.join(format!("{name}.probe.html"));
    std::fs::write(
        &probe_page,
        html.replace("</body>", &format!("{PROBE}</body>")),
    )
    .unwrap();
    let dom = String::from_utf8(run_chromium(&["--dump-dom".into()], &probe_page).stdout).unwrap();
    let raw = dom
        .split("data-probe=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("the probe ran: {}", &dom[..dom.len().min(500)]))
        .split('"')
        .next()
        .unwrap();
    let probe: serde_json::Value = serde_json::from_str(&unescape(raw)).unwrap();
    assert_eq!(probe["errors"], serde_json::json!([]), "{name}: no errors");
    assert_eq!(probe["labels"], labels, "{name}: every label laid out");
    let outside = probe["outside"].as_array().unwrap();
    assert!(
        outside.is_empty(),
        "{name}: {} labels' real text runs outside its claimed box, e.g. {:?}",
        outside.len(),
        &outside[..outside.len().min(3)]
    );
    assert_eq!(
        (probe["width"].as_u64(), probe["height"].as_u64()),
        (Some(w.into()), Some(h.into())),
        "{name}: page size"
    );

    // The picture.
    let shot = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &[
            format!("--window-size={w},{h}"),
            format!("--screenshot={}", shot.display()),
        ],
        &page,
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (w, h), "{name}: screenshot size");
    check_pixels(name, &info, &pixels);
}

fn check_pixels(name: &str, info: &png::OutputInfo, pixels: &[u8]) {
    let channels = info.color_type.samples();
    assert!(
        channels >= 3 && info.bit_depth == png::BitDepth::Eight,
        "{name}: RGB(A) 8-bit"
    );
    let px = |i: usize| &pixels[i * channels..i * channels + 3];
    let count = info.width as usize * info.height as usize;
    let ink = (0..count).filter(|&i| px(i) != [255, 255, 255]).count();
    assert!(
        ink * 100 > count * 2,
        "{name}: the page is drawn ({ink} of {count} pixels not white)"
    );
    // Something is drawn in the last fifth: the whole height rendered.
    let tail = count * 4 / 5;
    assert!(
        (tail..count).any(|i| px(i) != [255, 255, 255]),
        "{name}: drawn to the bottom"
    );
}

fn has_colour(png_path: &Path, rgb: [u8; 3]) -> bool {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    pixels.chunks(channels).any(|p| p[..3] == rgb)
}

#[test]
fn the_default_workflows_render_in_chromium() {
    let svg = schematic(&OrgHeading::DEFAULTS, &defaults::all());
    check_in_browser("default-workflows", OrgHeading::DEFAULTS.name, svg.clone());
    let shot = artefacts().join("default-workflows.png");
    // The legend's and the steps' colours: email blue, survey violet.
    assert!(has_colour(&shot, [0x25, 0x63, 0xeb]) && has_colour(&shot, [0x7c, 0x3a, 0xed]));

    // The .svg file on its own opens as XML (a parse error shows as a page
    // with <parsererror>).
    let file = artefacts().join("default-workflows.svg");
    std::fs::write(&file, &svg).unwrap();
    let dom = String::from_utf8(run_chromium(&["--dump-dom".into()], &file).stdout).unwrap();
    assert!(
        dom.contains("<svg") && !dom.contains("parsererror"),
        "{}",
        &dom[..dom.len().min(400)]
    );
}

fn entry(at: &str, kind: &'static str, status: &'static str, note: Option<&str>) -> TimelineEntry {
    TimelineEntry {
        at: at.to_owned(),
        zone: "America/Los_Angeles".to_owned(),
        workflow_id: "welcome-emr".to_owned(),
        title: "Welcome email (EMR) <with a title that needs escaping & wrapping> ".repeat(2),
        step: 0,
        occurrence: 0,
        kind,
        status,
        note: note.map(str::to_owned),
        would_skip: None,
        would_wait_until: None,
        preview: Some("Welcome to Acme PT, Ana".to_owned()),
    }
}

#[test]
fn a_patient_timeline_renders_in_chromium() {
    let heading = PatientHeading {
        org_id: "ACME01",
        org_name: "Acme PT",
        timezone: "America/Los_Angeles",
        patient_id: "P555",
        now: "2026-12-07T18:00:00Z".parse().unwrap(),
    };
    let entries = vec![
        entry("2026-12-06T09:00:00-08:00", "email", "sent", None),
        entry(
            "2026-12-06T09:00:00-08:00",
            "text",
            "skipped",
            Some("no_mobile"),
        ),
        entry("2026-12-08T09:00:00-08:00", "survey", "scheduled", None),
        entry("2026-12-22T09:00:00-08:00", "exercise", "projected", None),
        entry(
            "2027-01-05T09:00:00-08:00",
            "care_plan",
            "failed",
            Some("address_suppressed"),
        ),
    ];
    check_in_browser(
        "patient-timeline",
        "Workflow timeline of patient P555",
        timeline(&heading, &entries),
    );
}
