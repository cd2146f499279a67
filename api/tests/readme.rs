//! The README's walkthrough, run: its samples are what the server answers.
//!
//! It starts the real `tenantry` on a fresh data directory (SQLite, the demo tenant, as
//! `cargo run` does, but on a spare port) and runs the ```` ```sh ```` blocks of the
//! README's `## Walkthrough` verbatim, in order, in one `bash` (what a block sets, later
//! blocks see) with the real `curl` and `jq`, adapted by [`PRELUDE`] only. Each block's
//! output, once UUIDs, RFC 3339 times and cursors are replaced by stable stand-ins (equal
//! values by equal ones), must equal the fenced block after the `<!-- sample:NAME -->` that
//! follows it, or be empty. With requests of its own it checks what the prose claims:
//! idempotent replays, and the cursor in `Link`. On a difference it fails with a diff;
//! `UPDATE_README=1 cargo test -p api --test readme` rewrites the samples instead. Without
//! `bash`, `curl` or `jq` it fails (it never skips).

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

const TENANTRY: &str = env!("CARGO_BIN_EXE_tenantry");

/// Runs before the blocks, with `$README_TENANTRY` the test's binary and `$README_SERVER`
/// the test's server (`http://127.0.0.1:PORT`).
const PRELUDE: &str = r#"set -euo pipefail
cargo() { # `cargo run --release -q -- ARGS…`: the test's binary with ARGS
  [[ "${*:1:4}" == "run --release -q --" ]] || { echo "readme.rs: not \`cargo $*\`" >&2; return 2; }
  "$README_TENANTRY" "${@:5}"
}
curl() { # the README's server (http://127.0.0.1:8080) replaced by the test's
  local args=() arg
  for arg; do
    case $arg in
      http://127.0.0.1:8080*) arg=$README_SERVER${arg#http://127.0.0.1:8080} ;;
      http://* | https://*) echo "readme.rs: not the README's server: $arg" >&2; return 2 ;;
    esac
    args+=("$arg")
  done
  command curl --show-error "${args[@]}"
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_prints_what_its_samples_show() {
    for tool in ["bash", "curl", "jq"] {
        let version = Command::new(tool).arg("--version").output();
        let found = version.is_ok_and(|o| o.status.success());
        assert!(found, "`{tool}` is missing: the test runs bash, curl, jq");
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("read README.md");
    let blocks = walkthrough(&readme);
    let samples = blocks.iter().filter(|b| b.sample.is_some()).count();
    assert!(samples > 0, "no `<!-- sample:… -->` in the walkthrough");

    let server = Server::start();
    let outputs = server.run(&blocks);
    check_prose(&server).await;

    let (mut normaliser, mut differences) = (Normaliser::default(), Vec::new());
    for (block, output) in blocks.iter().zip(outputs) {
        let Some(sample) = &block.sample else {
            let line = block.line;
            assert_eq!(output, "", "README line {line}: output, but no sample");
            continue;
        };
        let mut actual = normaliser.text(&output);
        if !actual.is_empty() && !actual.ends_with('\n') {
            actual.push('\n'); // `curl -s` prints a body as it came; a sample ends its line
        }
        if actual != sample.text {
            differences.push((sample, actual));
        }
    }
    if differences.is_empty() {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some_and(|v| v == "1") {
        let mut lines: Vec<&str> = readme.lines().collect();
        // From the last sample up, so earlier line numbers stay valid.
        for (sample, actual) in differences.iter().rev() {
            lines.splice(sample.lines.clone(), actual.lines());
        }
        let end = if readme.ends_with('\n') { "\n" } else { "" };
        std::fs::write(&path, lines.join("\n") + end).expect("rewrite README.md");
        eprintln!("README.md: {} sample(s) rewritten", differences.len());
        return;
    }
    let mut report = String::new();
    for (sample, actual) in &differences {
        let (name, line) = (&sample.name, sample.lines.start + 1);
        report += &format!("\nsample `{name}` (README line {line}):\n");
        report += &diff(&sample.text, actual);
    }
    panic!(
        "the README's walkthrough samples differ from what the server answers (`-` README, \
         `+` server); rerun with UPDATE_README=1 to rewrite them:\n{report}"
    );
}

/// What the prose around the samples claims: a `POST` sent again with its `Idempotency-Key`
/// is replayed (`201`, `etag: "1"`), and a page with more names its cursor in `Link`.
async fn check_prose(server: &Server) {
    let args = "token --tenant acme --scopes people:read,people:write".split(' ');
    let token = command(&server.dir, TENANTRY).args(args).output();
    let token = String::from_utf8_lossy(&token.expect("tenantry token").stdout).into_owned();
    let (http, token) = (reqwest::Client::new(), token.trim());
    let people = format!("{}/v1/people", server.base);
    let person = serde_json::json!({"first_name": "Grace", "last_name": "Hopper"});
    let (mut answers, mut replayed) = (Vec::new(), String::new());
    for _ in 0..2 {
        let post = http.post(&people).bearer_auth(token).json(&person);
        let post = post.header("Idempotency-Key", "readme-prose-1");
        let response = post.send().await.expect("an answer");
        replayed = header(&response, "idempotent-replayed");
        let head = (response.status().as_u16(), header(&response, "etag"));
        answers.push((head, response.text().await.expect("a body")));
    }
    assert_eq!(answers[0].0, (201, "\"1\"".into()), "{}", answers[0].1);
    assert_eq!(answers[0], answers[1], "a replay answers the same");
    assert_eq!(replayed, "true", "a replay says `idempotent-replayed`");

    let page = http.get(format!("{people}?limit=2")).bearer_auth(token);
    let page = page.send().await.expect("an answer");
    let link = header(&page, "link");
    let page: serde_json::Value = page.json().await.expect("a page");
    assert_eq!(page["has_more"], true, "{page}");
    let cursor = page["next_cursor"].as_str().expect("a next_cursor");
    let expected = format!("</v1/people?limit=2&cursor={cursor}>; rel=\"next\"");
    assert_eq!(link, expected);
}

fn header(response: &reqwest::Response, name: &str) -> String {
    let value = response.headers().get(name).and_then(|v| v.to_str().ok());
    value.unwrap_or_default().to_owned()
}

// ---- the README

/// A ```` ```sh ```` block of the walkthrough (its content, one `\n` after each line, and
/// the line of its opening fence, 1-based), with the sample that follows it, if any.
struct Block {
    line: usize,
    text: String,
    sample: Option<Sample>,
}

/// A fenced block after a `<!-- sample:NAME -->` marker: its content and the content's
/// lines in the README (0-based).
struct Sample {
    name: String,
    lines: Range<usize>,
    text: String,
}

/// The command blocks of the README's `## Walkthrough` section, with their samples.
fn walkthrough(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let start = lines.iter().position(|l| l.trim_end() == "## Walkthrough");
    let mut i = start.expect("a `## Walkthrough` section in README.md") + 1;
    let (mut blocks, mut marker) = (Vec::<Block>::new(), None);
    while i < lines.len() && !lines[i].starts_with("## ") {
        let line = lines[i].trim_end();
        i += 1;
        if let Some(name) = line.strip_prefix("<!-- sample:") {
            let fence = lines.get(i).is_some_and(|l| l.starts_with("```"));
            assert!(fence, "README line {i}: no block right after the marker");
            let name = name.strip_suffix(" -->").expect("`<!-- sample:NAME -->`");
            marker = Some(name.trim().to_owned());
        } else if let Some(info) = line.strip_prefix("```") {
            let end = (i..lines.len()).find(|&n| lines[n].trim_end() == "```");
            let end = end.unwrap_or_else(|| panic!("README line {i}: an unclosed block"));
            let text = lines[i..end].iter().map(|l| format!("{l}\n")).collect();
            if let Some(name) = marker.take() {
                let block = blocks.last_mut().filter(|b| b.sample.is_none());
                let block = block.unwrap_or_else(|| panic!("README line {i}: no sh block for it"));
                let lines = i..end;
                block.sample = Some(Sample { name, lines, text });
            } else if info.trim() == "sh" {
                let (line, sample) = (i, None);
                blocks.push(Block { line, text, sample });
            }
            i = end + 1;
        }
    }
    blocks
}

/// A unified diff of `old` and `new`, by `diff` (diffutils).
fn diff(old: &str, new: &str) -> String {
    let script = r#"diff -u --label README --label server <(printf %s "$1") <(printf %s "$2")"#;
    let args = ["-c", script, "diff", old, new];
    let diff = Command::new("bash").args(args).output().expect("bash runs");
    String::from_utf8_lossy(&diff.stdout).into_owned() + &String::from_utf8_lossy(&diff.stderr)
}

// ---- the server and the shell

/// `tenantry serve` on a fresh data directory (SQLite, the demo tenant), as `cargo run`
/// starts it but on a spare port; killed and its directory removed on drop.
struct Server {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Server {
    fn start() -> Self {
        let dir = format!("tenantry-readme-{}", Uuid::now_v7().simple());
        let dir = std::env::temp_dir().join(dir);
        std::fs::create_dir_all(&dir).expect("create a data directory");
        let mut serve = command(&dir, TENANTRY);
        let serve = serve.arg("serve").stdout(Stdio::piped()).spawn();
        let mut child = serve.expect("start tenantry serve");
        let stdout = child.stdout.take().expect("stdout");
        // The banner names the address; then stdout is drained, so the server never blocks.
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let banner = lines.find_map(|l| Some(l.split_once("is running at ")?.1.to_owned()));
        let Some(base) = banner.as_deref().and_then(|b| b.split_whitespace().next()) else {
            let _ = child.kill();
            panic!("tenantry serve printed no banner: {:?}", child.wait());
        };
        let base = base.to_owned();
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, dir, base }
    }

    /// Runs the blocks after [`PRELUDE`] in one `bash`; returns what each printed.
    fn run(&self, blocks: &[Block]) -> Vec<String> {
        let delimiter = format!("--- readme.rs {} ---", Uuid::now_v7().simple());
        let mut script = PRELUDE.to_owned();
        for block in blocks {
            script += &format!("{}printf '\\n%s\\n' '{delimiter}'\n", block.text);
        }
        let mut bash = command(&self.dir, "bash");
        // HOME: an empty directory, so no ~/.curlrc or ~/.jq changes what they print.
        bash.env("HOME", &self.dir).env("README_SERVER", &self.base);
        bash.env("README_TENANTRY", TENANTRY).args(["-c", &script]);
        bash.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        let output = bash.output().expect("bash runs");
        eprint!("{}", String::from_utf8_lossy(&output.stderr)); // shown if the test fails
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut outputs: Vec<&str> = stdout.split(&format!("\n{delimiter}\n")).collect();
        let last = outputs.pop().unwrap_or_default();
        if !output.status.success() || outputs.len() != blocks.len() || !last.is_empty() {
            let line = blocks.get(outputs.len()).map_or(0, |b| b.line);
            let status = output.status;
            panic!("the block at README line {line} failed ({status}); its output:\n{last}");
        }
        outputs.into_iter().map(str::to_owned).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `program` with the environment `tenantry` gets here, and nothing else: the embedded
/// defaults of a fresh clone on the data directory `dir` (no inherited `DATABASE_URL`).
fn command(dir: &Path, program: &str) -> Command {
    let (mut command, data) = (Command::new(program), dir.join("data"));
    let database = format!("sqlite://{}?mode=rwc", data.join("tenantry.db").display());
    command.env_clear().env("TENANTRY_DATA_DIR", data);
    command.env("DATABASE_URL", database);
    command.env("TENANTRY_BIND", "127.0.0.1:0");
    command.env("TENANTRY_LOG", "warn").stdin(Stdio::null());
    command
}

// ---- normalising

type Seen = HashMap<String, String>;

/// Replaces volatile values with stable stand-ins: the n-th distinct UUID, time or cursor
/// fingerprint by the n-th stand-in of its kind, the same value always by the same one.
#[derive(Default)]
struct Normaliser {
    uuids: Seen,
    times: Seen,
    hex: Seen,
}

/// The stand-in of `real` in `seen`, made by `make(n)` for the n-th distinct value.
fn stand_in(seen: &mut Seen, real: &str, make: impl FnOnce(usize) -> String) -> String {
    let n = seen.len();
    let entry = seen.entry(real.to_owned());
    entry.or_insert_with(|| make(n)).clone()
}

/// The stand-in times start here.
fn epoch() -> DateTime<Utc> {
    "2026-01-15T09:30:00.123456Z".parse().expect("a time")
}

impl Normaliser {
    /// Every JSON string literal of `text` normalised; the rest as it is.
    fn text(&mut self, text: &str) -> String {
        let (mut out, mut rest) = (String::new(), text);
        while let Some(start) = rest.find('"') {
            (out, rest) = (out + &rest[..start], &rest[start..]);
            let mut strings = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            let Some(Ok(value)) = strings.next() else {
                (out, rest) = (out + "\"", &rest[1..]);
                continue;
            };
            let (raw, normalised) = (&rest[..strings.byte_offset()], self.string(&value));
            if normalised == value {
                out += raw;
            } else {
                out += &serde_json::to_string(&normalised).expect("a string");
            }
            rest = &rest[raw.len()..];
        }
        out + rest
    }

    fn string(&mut self, value: &str) -> String {
        if let Some(cursor) = self.cursor(value) {
            return cursor;
        }
        if let Ok(at) = DateTime::parse_from_rfc3339(value) {
            return stand_in(&mut self.times, value, |n| {
                let fake = epoch() + TimeDelta::microseconds(1_234_567 * n as i64);
                let fake = fake.with_timezone(&at.timezone());
                fake.to_rfc3339_opts(SecondsFormat::AutoSi, value.ends_with('Z'))
            });
        }
        // Every UUID in it.
        let (mut out, mut rest) = (String::new(), value);
        while let Some(next) = rest.chars().next() {
            let candidate = rest.get(..36).filter(|c| c.contains('-'));
            if let Some(id) = candidate.filter(|c| Uuid::try_parse(c).is_ok()) {
                (out, rest) = (out + &stand_in(&mut self.uuids, id, uuid), &rest[36..]);
            } else {
                out.push(next);
                rest = &rest[next.len_utf8()..];
            }
        }
        out
    }

    /// A cursor (`base64url(JSON payload).base64url(tag)`) re-encoded around its payload
    /// normalised (ids, times, the binding fingerprint `b`), with a tag derived from that.
    fn cursor(&mut self, value: &str) -> Option<String> {
        let (payload, tag) = value.split_once('.')?;
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let tag_len = URL_SAFE_NO_PAD.decode(tag).ok()?.len();
        if !json.starts_with("{\"v\":") || tag_len == 0 {
            return None;
        }
        let payload: serde_json::Value = serde_json::from_str(&json).ok()?;
        let mut normalised = self.text(&json);
        if let Some(fingerprint) = payload["b"].as_str() {
            let fake = stand_in(&mut self.hex, fingerprint, |n| {
                let hash = Sha256::digest(format!("readme fingerprint {n}"));
                let bytes = hash.iter().take(fingerprint.len() / 2);
                bytes.map(|b| format!("{b:02x}")).collect()
            });
            let [real, fake] = [fingerprint, &fake].map(|b| format!("\"b\":\"{b}\""));
            normalised = normalised.replace(&real, &fake);
        }
        let tag = &Sha256::digest(normalised.as_bytes())[..tag_len.min(32)];
        let [payload, tag] = [normalised.as_bytes(), tag].map(|b| URL_SAFE_NO_PAD.encode(b));
        Some(format!("{payload}.{tag}"))
    }
}

/// The n-th stand-in UUID: a UUIDv7 whose time counts up from the stand-in epoch, the
/// rest from a hash of n.
fn uuid(n: usize) -> String {
    let millis = u64::try_from(epoch().timestamp_millis()).unwrap_or(0) + n as u64;
    let hash = Sha256::digest(format!("readme uuid {n}"));
    let mut bytes = [0_u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&hash[..10]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    Uuid::from_bytes(bytes).to_string()
}

#[test]
fn equal_volatile_values_get_equal_stand_ins_and_others_stay() {
    let id = "0190c0de-89ab-7cde-8f01-23456789abcd";
    let at = "2026-11-22T16:44:21.405683Z";
    let text = format!(r#"{{"id":"{id}","at":"{at}","same":"{at}","in":"/p/{id}","n":"Ada"}}"#);
    let out = Normaliser::default().text(&text);
    let get = |k: &str| serde_json::from_str::<serde_json::Value>(&out).unwrap()[k].clone();
    assert_ne!(get("id"), id);
    assert_eq!(get("in"), format!("/p/{}", get("id").as_str().unwrap()));
    assert_eq!([get("at"), get("same")], ["2026-01-15T09:30:00.123456Z"; 2]);
    assert_eq!(get("n"), "Ada");
}
