//! The files users copy: deploy/*.yaml (a Kubernetes Deployment, a Helm values snippet) and
//! Dockerfile.example. Their probe ports and paths, drain timings, grace period and non-root
//! settings must agree with each other and with the contract.
//!
//! No YAML crate: the deploy files keep to a small block subset (see `parse_yaml`), parsed here
//! into `serde_json::Value`s. The Dockerfile parser is shared with the runc suite, which runs the
//! Dockerfile's final stage in a container.

use serde_json::{Map, Value};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load_yaml(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every deploy/*.yaml, parsed, by file name.
fn deploy_files() -> Vec<(PathBuf, Value)> {
    let mut paths: Vec<PathBuf> = fs::read_dir(repo().join("deploy"))
        .expect("deploy/ exists")
        .map(|e| e.expect("readable deploy/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "deploy/ holds no YAML files");
    paths
        .into_iter()
        .map(|p| (p.clone(), load_yaml(&p)))
        .collect()
}

fn deployments() -> Vec<(PathBuf, Value)> {
    let found: Vec<_> = deploy_files()
        .into_iter()
        .filter(|(_, v)| v["kind"] == "Deployment")
        .collect();
    assert!(!found.is_empty(), "deploy/ holds no Deployment");
    found
}

fn helm_values() -> Value {
    load_yaml(&repo().join("deploy/helm-values.yaml"))
}

/// The pod's container that runs vigil: the one configured with VIGIL_HEALTH_LISTEN.
fn vigil_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("spec.template.spec.containers is a list");
    containers
        .iter()
        .find(|c| env_map(&c["env"]).contains_key("VIGIL_HEALTH_LISTEN"))
        .expect("a container sets VIGIL_HEALTH_LISTEN")
}

/// A Kubernetes `env` list as name -> value (every value a string, as Kubernetes requires).
fn env_map(env: &Value) -> Map<String, Value> {
    let mut map = Map::new();
    for item in env.as_array().into_iter().flatten() {
        let name = item["name"].as_str().expect("env item has a name");
        assert!(
            item["value"].is_string(),
            "env {name}: value must be a quoted string, got {}",
            item["value"]
        );
        assert!(
            map.insert(name.to_string(), item["value"].clone())
                .is_none(),
            "env {name} is set twice"
        );
    }
    map
}

/// vigil's settings as the container's env gives them, with the contract's defaults.
#[derive(Debug)]
struct VigilEnv {
    listen: SocketAddr,
    drain_delay: f64,
    drain_timeout: f64,
}

impl VigilEnv {
    fn from_env(env: &Map<String, Value>) -> VigilEnv {
        let get = |k: &str| env.get(k).and_then(Value::as_str);
        let secs = |k: &str, default: f64| {
            get(k).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{k}={v}: not a number of seconds"))
            })
        };
        let listen = get("VIGIL_HEALTH_LISTEN").expect("VIGIL_HEALTH_LISTEN is set");
        VigilEnv {
            listen: listen
                .parse()
                .unwrap_or_else(|_| panic!("VIGIL_HEALTH_LISTEN={listen}: not ADDR:PORT")),
            drain_delay: secs("VIGIL_DRAIN_DELAY", 0.0),
            drain_timeout: secs("VIGIL_DRAIN_TIMEOUT", 9.0),
        }
    }
}

/// The port an httpGet probe targets, resolving a named port through the container's ports.
fn probe_port(container: &Value, probe: &Value) -> u16 {
    let port = &probe["httpGet"]["port"];
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).expect("probe port fits u16");
    }
    let name = port
        .as_str()
        .expect("probe port is a number or a port name");
    let found = container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("probe port {name} is not among the container's ports"));
    u16::try_from(found["containerPort"].as_u64().expect("containerPort")).expect("port")
}

fn seconds(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} must be a number, got {v}"))
}

/// preStop `sleep: {seconds: N}` (the native action), 0 without a preStop hook. A preStop exec
/// hook has a duration this test cannot know, so it is refused here.
fn pre_stop_seconds(container: &Value) -> f64 {
    let pre_stop = &container["lifecycle"]["preStop"];
    if pre_stop.is_null() {
        return 0.0;
    }
    assert!(
        pre_stop["exec"].is_null() && pre_stop["httpGet"].is_null(),
        "only a preStop sleep has a duration the grace-period check can add up"
    );
    seconds(&pre_stop["sleep"]["seconds"], "preStop.sleep.seconds")
}

/// The probes sit on vigil's health port with the contract's paths, and the listener is one the
/// kubelet can reach (it probes the pod IP, never the container's loopback).
fn check_probes(file: &Path, container: &Value, vigil: &VigilEnv) {
    let f = file.display();
    assert!(
        vigil.listen.ip().is_unspecified(),
        "{f}: VIGIL_HEALTH_LISTEN={} is not reachable from the kubelet; use 0.0.0.0 or [::]",
        vigil.listen
    );
    for (probe, path) in [
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/readyz"),
    ] {
        let p = &container[probe];
        assert!(p.is_object(), "{f}: {probe} is missing");
        assert_eq!(p["httpGet"]["path"], path, "{f}: {probe} path");
        assert_eq!(
            probe_port(container, p),
            vigil.listen.port(),
            "{f}: {probe} port must be VIGIL_HEALTH_LISTEN's"
        );
    }
    // A load balancer that follows readiness must see the 503 before the app gets SIGTERM.
    let r = &container["readinessProbe"];
    let period = r["periodSeconds"].as_f64().unwrap_or(10.0);
    let failures = r["failureThreshold"].as_f64().unwrap_or(3.0);
    assert!(
        period * failures <= vigil.drain_delay,
        "{f}: readiness notices a drain after {period} x {failures} s, later than \
         VIGIL_DRAIN_DELAY={}",
        vigil.drain_delay
    );
}

/// The shutdown budget (docs/containers.md). The contract puts the drain delay inside the drain
/// timeout (vigil is gone by timeout + 0.5 s after SIGTERM); the check also adds the delay on top,
/// as slack, so the files hold under either reading.
fn check_grace(file: &Path, pod: &Value, container: &Value, vigil: &VigilEnv) {
    let f = file.display();
    let grace = match &pod["terminationGracePeriodSeconds"] {
        Value::Null => 30.0,
        v => seconds(v, "terminationGracePeriodSeconds"),
    };
    let pre_stop = pre_stop_seconds(container);
    assert!(
        vigil.drain_delay < vigil.drain_timeout,
        "{f}: VIGIL_DRAIN_DELAY={} must be below VIGIL_DRAIN_TIMEOUT={}",
        vigil.drain_delay,
        vigil.drain_timeout
    );
    let needed = pre_stop + vigil.drain_delay + vigil.drain_timeout + 0.5;
    assert!(
        grace >= needed,
        "{f}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain delay {} + \
         drain timeout {} + 0.5 = {needed}",
        vigil.drain_delay,
        vigil.drain_timeout
    );
}

fn check_env_only(what: &str, container: &Value) {
    for key in ["command", "args"] {
        for arg in container[key].as_array().into_iter().flatten() {
            let arg = arg.as_str().unwrap_or_default();
            assert!(
                !crate::util::FLAGS.iter().any(|f| arg.starts_with(f)),
                "{what}: {key} passes vigil flag {arg}; configure vigil by env"
            );
        }
    }
}

#[test]
fn deployment_probes_use_vigils_health_port_and_paths() {
    for (file, d) in deployments() {
        let container = vigil_container(&d);
        let vigil = VigilEnv::from_env(&env_map(&container["env"]));
        check_probes(&file, container, &vigil);
        check_env_only(&file.display().to_string(), container);
    }
}

#[test]
fn deployment_grace_period_covers_the_drain() {
    for (file, d) in deployments() {
        let pod = &d["spec"]["template"]["spec"];
        let container = vigil_container(&d);
        let vigil = VigilEnv::from_env(&env_map(&container["env"]));
        check_grace(&file, pod, container, &vigil);
    }
}

#[test]
fn deployment_runs_as_non_root() {
    for (file, d) in deployments() {
        let f = file.display();
        let pod = &d["spec"]["template"]["spec"];
        let container = vigil_container(&d);
        let pick = |key: &str| match &container["securityContext"][key] {
            Value::Null => pod["securityContext"][key].clone(),
            v => v.clone(),
        };
        assert_eq!(pick("runAsNonRoot"), true, "{f}: runAsNonRoot");
        if let Some(uid) = pick("runAsUser").as_u64() {
            assert_ne!(uid, 0, "{f}: runAsUser");
        }
        let sc = &container["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{f}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{f}"
        );
    }
}

#[test]
fn helm_values_agree_with_the_deployment() {
    let values = helm_values();
    let (file, d) = deployments().remove(0);
    let f = file.display();
    let pod = &d["spec"]["template"]["spec"];
    let container = vigil_container(&d);
    assert_eq!(
        env_map(&values["env"]),
        env_map(&container["env"]),
        "helm env vs {f}"
    );
    for key in [
        "startupProbe",
        "livenessProbe",
        "readinessProbe",
        "ports",
        "securityContext",
    ] {
        assert_eq!(values[key], container[key], "helm {key} vs {f}");
    }
    assert_eq!(values["podSecurityContext"], pod["securityContext"], "{f}");
    assert_eq!(
        values["terminationGracePeriodSeconds"], pod["terminationGracePeriodSeconds"],
        "{f}"
    );
    // The values file is checked on its own too, as a chart renders it.
    let vigil = VigilEnv::from_env(&env_map(&values["env"]));
    let as_pod = serde_json::json!({
        "terminationGracePeriodSeconds": values["terminationGracePeriodSeconds"],
    });
    let helm = repo().join("deploy/helm-values.yaml");
    check_probes(&helm, &values, &vigil);
    check_grace(&helm, &as_pod, &values, &vigil);
    check_env_only("helm values", &values);
    assert!(
        values.get("command").is_none() && values.get("args").is_none(),
        "helm values: vigil is configured by env only"
    );
}

#[test]
fn dockerfile_example_is_consistent() {
    let df = dockerfile();
    assert!(
        df.stages.len() >= 2,
        "multi-stage: a builder and a final stage"
    );
    // Issue 13: the small binary, std rebuilt without its backtrace printer, as scripts/release.
    assert!(
        df.builder_runs.iter().any(|r| {
            r.contains("cargo build --locked --release -Z build-std=std,panic_abort")
                && r.contains("--target x86_64-unknown-linux-musl")
                && r.contains("-Cpanic=immediate-abort")
        }),
        "the builder builds the small static musl binary: {:?}",
        df.builder_runs
    );
    assert_eq!(
        df.stages.last().map(String::as_str),
        Some("scratch"),
        "final stage"
    );
    assert_eq!(df.entrypoint, ["/vigil", "--"]);
    assert!(!df.cmd.is_empty(), "CMD names the app");
    let uid = df.user.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {} must be a numeric non-root uid (runAsNonRoot cannot check names)",
        df.user
    );
    let env: Map<String, Value> = df
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let vigil = VigilEnv::from_env(&env);
    assert!(vigil.listen.ip().is_unspecified(), "{}", vigil.listen);
    // Docker sends SIGKILL 10 s after SIGTERM.
    assert!(
        vigil.drain_timeout + 0.5 <= 10.0,
        "VIGIL_DRAIN_TIMEOUT {} does not fit docker stop's 10 s",
        vigil.drain_timeout
    );
    assert_eq!(
        df.healthcheck,
        [
            "/vigil".to_string(),
            "probe".to_string(),
            format!("http://127.0.0.1:{}/healthz", vigil.listen.port())
        ]
    );
}

#[test]
fn yaml_subset_parser() {
    let text = r#"
# comment
a: 1
b: "x: y # not a comment"
c:
  - name: one   # trailing comment
    value: '2'
  - plain
  - [a, "b c"]
d:
  e:
    f: true
  g: 0.5
h: 0.0.0.0:8086
lifecycle:
  preStop:
    sleep:
      seconds: 5
"#;
    let v = parse_yaml(text).expect("parses");
    assert_eq!(
        v,
        serde_json::json!({
            "a": 1,
            "b": "x: y # not a comment",
            "c": [{"name": "one", "value": "2"}, "plain", ["a", "b c"]],
            "d": {"e": {"f": true}, "g": 0.5},
            "h": "0.0.0.0:8086",
            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        })
    );
    assert_eq!(pre_stop_seconds(&v), 5.0);
    for bad in [
        "a: 1\n  b: 2\n",
        "a:\n\tb: 1\n",
        "a: 1\na: 2\n",
        "- x\ny: 1\n",
        "a: \"open\n",
        "---\na: 1\n",
    ] {
        assert!(parse_yaml(bad).is_err(), "accepted {bad:?}");
    }
}

// ---- the YAML subset ----

#[derive(Debug, Clone)]
struct Line {
    number: usize,
    indent: usize,
    text: String,
}

/// Parses the YAML subset the deploy files keep to: one document; block mappings and block
/// sequences by indentation (spaces only); `- key: value` items; scalars plain, "double" or
/// 'single' quoted, integers, decimals, booleans; one-line flow sequences `[a, "b"]`; `#`
/// comments. Anything else is an error naming the line, so a file drifting out of the subset
/// fails the test instead of being misread.
pub(crate) fn parse_yaml(text: &str) -> Result<Value, String> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        if raw.contains('\t') {
            return Err(format!("line {number}: tab"));
        }
        let content = strip_comment(raw).trim_end();
        if content.trim().is_empty() {
            continue;
        }
        if content.trim() == "---" {
            return Err(format!("line {number}: one document per file"));
        }
        let indent = content.len() - content.trim_start().len();
        lines.push(Line {
            number,
            indent,
            text: content.trim_start().to_string(),
        });
    }
    if lines.is_empty() {
        return Ok(Value::Null);
    }
    let mut pos = 0;
    let first = lines[0].indent;
    let value = block(&mut lines, &mut pos, first)?;
    match lines.get(pos) {
        Some(l) => Err(format!("line {}: unexpected indentation", l.number)),
        None => Ok(value),
    }
}

fn block(lines: &mut [Line], pos: &mut usize, indent: usize) -> Result<Value, String> {
    if is_item(&lines[*pos].text) {
        sequence(lines, pos, indent)
    } else {
        mapping(lines, pos, indent)
    }
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// The block nested under `key:` or `-`, or null when the next line is not deeper.
fn nested(lines: &mut [Line], pos: &mut usize, indent: usize) -> Result<Value, String> {
    match lines.get(*pos).map(|l| l.indent) {
        Some(deeper) if deeper > indent => block(lines, pos, deeper),
        _ => Ok(Value::Null),
    }
}

/// After a block at `indent` ends, the next line must belong to an enclosing block.
fn block_end(lines: &[Line], pos: usize, indent: usize) -> Result<(), String> {
    match lines.get(pos) {
        Some(l) if l.indent >= indent => Err(format!("line {}: unexpected indentation", l.number)),
        _ => Ok(()),
    }
}

fn mapping(lines: &mut [Line], pos: &mut usize, indent: usize) -> Result<Value, String> {
    let mut map = Map::new();
    while let Some(line) = lines
        .get(*pos)
        .filter(|l| l.indent == indent && !is_item(&l.text))
    {
        let line = line.clone();
        let (key, rest) = split_key(&line.text)
            .ok_or_else(|| format!("line {}: expected `key: value`", line.number))?;
        *pos += 1;
        let value = if rest.is_empty() {
            nested(lines, pos, indent)?
        } else {
            scalar(rest).map_err(|e| format!("line {}: {e}", line.number))?
        };
        if map.insert(key.to_string(), value).is_some() {
            return Err(format!("line {}: duplicate key {key}", line.number));
        }
    }
    block_end(lines, *pos, indent)?;
    Ok(Value::Object(map))
}

fn sequence(lines: &mut [Line], pos: &mut usize, indent: usize) -> Result<Value, String> {
    let mut items = Vec::new();
    while let Some(line) = lines
        .get(*pos)
        .filter(|l| l.indent == indent && is_item(&l.text))
    {
        let line = line.clone();
        let rest = line.text[1..].trim_start();
        if rest.is_empty() {
            *pos += 1;
            items.push(nested(lines, pos, indent)?);
        } else if split_key(rest).is_some() {
            // `- key: value` opens a mapping whose keys sit where `key` starts.
            let column = indent + line.text.len() - rest.len();
            lines[*pos] = Line {
                indent: column,
                text: rest.to_string(),
                ..line
            };
            items.push(mapping(lines, pos, column)?);
        } else {
            items.push(scalar(rest).map_err(|e| format!("line {}: {e}", line.number))?);
            *pos += 1;
        }
    }
    block_end(lines, *pos, indent)?;
    Ok(Value::Array(items))
}

/// `key: rest` or `key:`, for a plain key.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let (key, rest) = match text.find(": ") {
        Some(i) => (&text[..i], text[i + 2..].trim()),
        None => (text.strip_suffix(':')?, ""),
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    (!key.is_empty() && key.chars().all(plain)).then_some((key, rest))
}

/// Drops a `#` comment: at the start, or after a space, outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev == ' ' => return &line[..i],
            None => {}
        }
        prev = c;
    }
    line
}

fn scalar(text: &str) -> Result<Value, String> {
    let quoted = |q: char| -> Result<String, String> {
        let inner = text
            .strip_prefix(q)
            .and_then(|t| t.strip_suffix(q))
            .filter(|_| text.len() >= 2)
            .ok_or_else(|| format!("unterminated quote in {text}"))?;
        Ok(if q == '\'' {
            inner.replace("''", "'")
        } else {
            inner.replace("\\\"", "\"").replace("\\\\", "\\")
        })
    };
    Ok(match text {
        t if t.starts_with('"') => Value::String(quoted('"')?),
        t if t.starts_with('\'') => Value::String(quoted('\'')?),
        t if t.starts_with('[') => {
            let inner = t
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .ok_or_else(|| format!("unterminated flow sequence {t}"))?;
            let items: Result<Vec<Value>, String> = inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(scalar)
                .collect();
            Value::Array(items?)
        }
        t if t.starts_with('{') || t.starts_with('&') || t.starts_with('*') || t == "|" => {
            return Err(format!("outside the YAML subset: {t}"));
        }
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" | "~" => Value::Null,
        t => match (t.parse::<i64>(), t.parse::<f64>()) {
            (Ok(n), _) => Value::from(n),
            (_, Ok(x)) if x.is_finite() && t.contains('.') => Value::from(x),
            _ => Value::String(t.to_string()),
        },
    })
}

// ---- Dockerfile.example ----

/// What the tests need from Dockerfile.example: the stages' bases, the builder's RUN lines, and
/// the final stage's USER, ENV, ENTRYPOINT, CMD and HEALTHCHECK command.
#[derive(Debug, Default)]
pub(crate) struct Dockerfile {
    pub stages: Vec<String>,
    pub builder_runs: Vec<String>,
    pub user: String,
    pub env: Vec<(String, String)>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub healthcheck: Vec<String>,
}

/// Parses Dockerfile.example (exec-form JSON arrays, `ENV K=V` without quotes).
pub(crate) fn dockerfile() -> Dockerfile {
    let path = repo().join("Dockerfile.example");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let joined = text.replace("\\\n", " ");
    let mut df = Dockerfile::default();
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let array = |s: &str| -> Vec<String> {
            serde_json::from_str(s).unwrap_or_else(|e| panic!("{word} {s}: not exec form: {e}"))
        };
        match word {
            "FROM" => {
                // A new stage: the final stage's settings are the last ones seen.
                if let Some(prev) = df.stages.last() {
                    assert_ne!(prev, "scratch", "the scratch stage must be the last");
                }
                df.stages
                    .push(rest.split_whitespace().next().unwrap_or_default().into());
                df.env.clear();
                df.user.clear();
            }
            "RUN" => df.builder_runs.push(rest.to_string()),
            "USER" => df.user = rest.to_string(),
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("ENV {pair}: use ENV K=V"));
                    df.env.retain(|(old, _)| old != k);
                    df.env.push((k.to_string(), v.to_string()));
                }
            }
            "ENTRYPOINT" => df.entrypoint = array(rest),
            "CMD" => df.cmd = array(rest),
            "HEALTHCHECK" => {
                let (_, command) = rest
                    .split_once("CMD ")
                    .unwrap_or_else(|| panic!("HEALTHCHECK without CMD: {rest}"));
                df.healthcheck = array(command.trim());
            }
            _ => {}
        }
    }
    df
}
