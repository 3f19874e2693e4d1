//! A kubelet for cluster tests: it plays the node's part for one
//! namespace's Pods, so that Deployments become available and Jobs
//! complete through the real controllers of the test cluster.
//!
//! The test cluster (`e2e/kube/testenv.sh`) runs a real kube-apiserver and
//! kube-controller-manager but no scheduler and no kubelet: the Deployment,
//! ReplicaSet and Job controllers create Pods, which stay Pending. A
//! [`Kubelet`] watches the Pods of one namespace (optionally only those
//! matching a label selector) and, for every Pending Pod it has not seen:
//!
//! 1. resolves the first container as a kubelet would: `command` + `args`
//!    (Larder's image has no ENTRYPOINT and `CMD ["larder", "--help"]`, so a
//!    container without `command` runs `args[0]`), with `$(VAR)` references
//!    expanded; `env` (`value`, `valueFrom.secretKeyRef`,
//!    `valueFrom.configMapKeyRef`, `valueFrom.fieldRef` for metadata.name,
//!    metadata.namespace, metadata.uid, metadata.labels/annotations['…'],
//!    spec.nodeName, spec.serviceAccountName, status.podIP, status.hostIP) and
//!    `envFrom`, read from the API server when the container starts. A
//!    missing Secret/ConfigMap or key that is not `optional` keeps the Pod
//!    Pending with the container waiting in `CreateContainerConfigError`
//!    (message as a kubelet writes it) and is retried every second, as a
//!    kubelet does;
//! 2. materializes the volumes in a per-pod directory: ConfigMap and Secret
//!    volumes (and `projected` ones of those) as files, respecting `items`
//!    and modes; `emptyDir` as an empty directory kept across container
//!    restarts; `hostPath` as the host path itself. A missing source keeps
//!    the container waiting in `ContainerCreating` (a kubelet emits
//!    FailedMount events; here the message says why) and is retried;
//! 3. remaps what cannot be the same on one host: every argument, env value
//!    and `workingDir` that is a volume's `mountPath` or lies under it
//!    (also the value of a `--flag=/path` argument) points into the pod's
//!    directory instead (longest mountPath first; note that `/tmp` is a
//!    mount of Larder's pods, so a host path under /tmp given as an argument
//!    lands in the emptyDir, as it would in a real pod). File contents (e.g.
//!    paths inside `larder.yaml`) are not rewritten. Processes share the
//!    host's network, so every declared TCP `containerPort` gets a free local
//!    port (kept across container restarts unless another process has taken
//!    it meanwhile): the value of a `--port`, `--*-port`, `--*_port` argument (or
//!    `--…-port=N`) and of an env var whose name ends in `PORT` that equals a
//!    declared containerPort is replaced by it. [`Kubelet::port_of`] maps
//!    "pod IP:containerPort" to `127.0.0.1:<port>`; the pod's IP is
//!    reported as 127.0.0.1;
//! 4. starts the process (`tokio::process`, `kill_on_drop`, under
//!    `setpriv --pdeathsig KILL` when setpriv exists, so it also dies with a
//!    test process that is killed) with a clean environment: the container's
//!    variables plus `PATH`, `HOSTNAME` (the pod's name), `HOME` (the pod's
//!    directory), `TZ=UTC` (containers have no local time zone) and, when
//!    set, `LLVM_PROFILE_FILE`. The working directory is `workingDir`
//!    (remapped) or the pod's directory. stdout and stderr go to a per-pod
//!    log file ([`Kubelet::logs`], [`Kubelet::log_path`]); every log's path
//!    and tail is printed when the test panics, and the directory is kept;
//! 5. reports through the Pod's `status` subresource (JSON merge patch) as a
//!    kubelet does: `phase`, `startTime`, `podIP`/`hostIP`, conditions
//!    `PodScheduled`, `Initialized`, `ContainersReady`, `Ready` (with
//!    `lastTransitionTime`) and `containerStatuses` (`ready`, `started`,
//!    `restartCount`, `state`, `lastState`). Readiness follows the
//!    `readinessProbe`: `httpGet` (HTTP/1.1 GET on the remapped port,
//!    2xx/3xx is success; for `scheme: HTTPS` only a TCP connect, as no TLS
//!    client is at hand), `tcpSocket` (connect), `exec` (run on the host,
//!    remapped like the container), honouring initialDelaySeconds,
//!    timeoutSeconds, successThreshold and failureThreshold; until the first
//!    success it probes every 250 ms rather than every periodSeconds (to
//!    keep tests fast), then every periodSeconds. A container without a
//!    readiness probe is ready once started. Liveness and startup probes
//!    are not run. The ReplicaSet and Deployment controllers then compute
//!    readyReplicas/availableReplicas and `Available`, and the Job controller
//!    `succeeded`/`failed` and `Complete`/`Failed`, by themselves;
//! 6. when the process exits: with `restartPolicy: Never` (and `OnFailure`
//!    on exit 0) the Pod becomes `Succeeded` (exit 0) or `Failed`, the
//!    container `terminated` {exitCode, reason `Completed`/`Error`}; with
//!    `Always`/`OnFailure` the container is `waiting` in `CrashLoopBackOff`
//!    with `lastState.terminated`, `restartCount` grows and it is restarted
//!    after a back-off of 1 s doubling to 10 s (a kubelet: 10 s to 5 min). An
//!    executable that cannot be found or started terminates with exit code
//!    128, reason `StartError` (containerd's behaviour);
//! 7. a Pod that is deleted (or gets a deletionTimestamp) has its process
//!    killed (SIGKILL at once: there is no graceful termination here).
//!    Dropping the [`Kubelet`] kills every process; [`Kubelet::shutdown`]
//!    does it and waits.
//!
//! Only a Pod's first container runs; other containers are reported as
//! waiting with reason `Unsupported`, and a Pod with init containers is
//! not started (its container waits with reason `Unsupported`), so such a
//! Pod never becomes Ready rather than pretending. Images are not pulled:
//! `command[0]` is looked up in the binaries map (by the full string, then
//! by its file name), which defaults to the workspace's own binaries
//! ([`ensure_binaries`]: `larder`, `feature-server`, `registry-server`,
//! built once per test process); any other name is looked up in the
//! host's `PATH`. No service-link variables (`KUBERNETES_SERVICE_HOST`, …)
//! are injected.
//!
//! # Unbound pods (found by experiment on the testenv's kube-apiserver 1.20.2)
//!
//! No Node object and no binding are needed. A Pod without `spec.nodeName`
//! accepts status patches (phase Running with Ready conditions, or
//! Succeeded/Failed with terminated container states); the ReplicaSet
//! controller counts such a Pod as ready and available, the Deployment
//! controller then sets `readyReplicas`, `availableReplicas` and
//! `Available=True` (reason MinimumReplicasAvailable), and the Job
//! controller counts Succeeded/Failed pods and sets `Complete=True` or
//! `Failed=True` (reason BackoffLimitExceeded with `backoffLimit: 0`).
//! Deleting an unbound Pod is immediate (the API server forces a zero grace
//! period when `spec.nodeName` is empty), so scale-downs, rollouts and
//! namespace deletion never wait for a kubelet's confirmation. So this
//! kubelet leaves pods unbound and creates no Node (binding to a fake Node
//! was not needed and not tried: it would make deletions graceful, i.e.
//! waiting up to 30 s for a kubelet's confirmation, and leave the pods to
//! the pod garbage collector once the shared cluster's Node is deleted).

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Probe, Secret};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// The pod IP and host IP reported for every pod: processes run on this host.
pub const POD_IP: &str = "127.0.0.1";

/// The workspace's binaries a pod may run: (package, binary).
pub const WORKSPACE_BINARIES: [(&str, &str); 3] = [
    ("larder-cli", "larder"),
    ("larder-feature-server", "feature-server"),
    ("larder-registry-server", "registry-server"),
];

/// Larder's image: no ENTRYPOINT, this CMD.
const IMAGE_CMD: [&str; 2] = ["larder", "--help"];

static BINARIES: tokio::sync::OnceCell<BTreeMap<String, PathBuf>> = tokio::sync::OnceCell::const_new();

/// The workspace's binaries by name (`larder`, `feature-server`,
/// `registry-server`), built once per test process with `cargo build -p …
/// --bin …` into the target directory this test was built in (a no-op
/// when they are up to date; it waits while another cargo holds the
/// target directory). With `LARDER_TEST_BIN_DIR` set, the binaries are
/// taken from that directory and nothing is built.
pub async fn ensure_binaries() -> &'static BTreeMap<String, PathBuf> {
    BINARIES
        .get_or_init(|| async {
            if let Some(dir) = std::env::var_os("LARDER_TEST_BIN_DIR") {
                let dir = PathBuf::from(dir);
                return binaries_in(&dir);
            }
            let (target_dir, profile) = target_dir();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(super::repo_root())
                .env("CARGO_TARGET_DIR", &target_dir)
                .arg("build")
                .arg("--quiet");
            match profile.as_str() {
                "debug" => {}
                "release" => {
                    cmd.arg("--release");
                }
                other => {
                    cmd.args(["--profile", other]);
                }
            }
            for (package, bin) in WORKSPACE_BINARIES {
                cmd.args(["-p", package, "--bin", bin]);
            }
            let started = Instant::now();
            let status = cmd.status().await.expect("run cargo build");
            assert!(
                status.success(),
                "cargo build of the pods' binaries ({WORKSPACE_BINARIES:?}) failed: {status}"
            );
            eprintln!(
                "kubelet: binaries ready in {} ({:.1} s)",
                target_dir.join(&profile).display(),
                started.elapsed().as_secs_f64()
            );
            binaries_in(&target_dir.join(profile))
        })
        .await
}

fn binaries_in(dir: &Path) -> BTreeMap<String, PathBuf> {
    WORKSPACE_BINARIES
        .iter()
        .map(|(_, bin)| {
            let path = dir.join(bin);
            assert!(path.is_file(), "missing binary {}", path.display());
            (bin.to_string(), path)
        })
        .collect()
}

/// The target directory and profile directory name this test binary was
/// built in (`<target>/<profile>/deps/<test>`).
fn target_dir() -> (PathBuf, String) {
    if let Ok(exe) = std::env::current_exe()
        && let Some(deps) = exe.parent()
        && deps.file_name().is_some_and(|n| n == "deps")
        && let Some(profile_dir) = deps.parent()
        && let Some(target) = profile_dir.parent()
    {
        let profile = profile_dir.file_name().unwrap().to_string_lossy().to_string();
        return (target.to_path_buf(), profile);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo_root().join("target"));
    (target, "debug".into())
}

/// How a [`Kubelet`] runs.
#[derive(Debug, Clone, Default)]
pub struct KubeletOptions {
    /// Only pods matching this label selector (`a=b,c=d`).
    pub selector: Option<String>,
    /// `command[0]` → executable. `None`: [`ensure_binaries`].
    pub binaries: Option<BTreeMap<String, PathBuf>>,
}

/// What the kubelet knows of one pod it took on.
#[derive(Debug, Clone, Default)]
pub struct PodRecord {
    pub name: String,
    pub uid: String,
    /// containerPort → local port.
    pub ports: BTreeMap<i32, u16>,
    /// The pod's directory (volumes, working directory).
    pub dir: PathBuf,
    pub log: PathBuf,
    /// How often its process was started.
    pub starts: u32,
    pub running: bool,
    /// The running process's id.
    pub pid: Option<u32>,
    pub ready: bool,
    pub exit_codes: Vec<i32>,
    /// The container's waiting reason and message, while it waits.
    pub waiting: Option<(String, String)>,
    /// The pod was deleted (its process killed).
    pub deleted: bool,
}

struct Entry {
    seq: u64,
    record: Arc<Mutex<PodRecord>>,
    stop: watch::Sender<Stop>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Why a pod's task stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    No,
    /// The pod was deleted.
    Deleted,
    /// The kubelet shuts down.
    Shutdown,
}

struct Shared {
    client: Client,
    namespace: String,
    binaries: BTreeMap<String, PathBuf>,
    root: PathBuf,
    setpriv: Option<PathBuf>,
    pods: Mutex<BTreeMap<String, Entry>>,
    seq: std::sync::atomic::AtomicU64,
}

/// A kubelet for one namespace; see the module documentation.
pub struct Kubelet {
    shared: Arc<Shared>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    root: Option<tempfile::TempDir>,
}

impl Kubelet {
    /// Run the pods of `namespace` with the workspace's binaries.
    pub async fn start(client: &Client, namespace: &str) -> Kubelet {
        Self::start_with(client, namespace, KubeletOptions::default()).await
    }

    pub async fn start_with(client: &Client, namespace: &str, options: KubeletOptions) -> Kubelet {
        let binaries = match options.binaries {
            Some(b) => b,
            None => ensure_binaries().await.clone(),
        };
        let root = tempfile::Builder::new()
            .prefix(&format!("kubelet-{namespace}-"))
            .tempdir()
            .expect("kubelet directory");
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        let shared = Arc::new(Shared {
            client: client.clone(),
            namespace: namespace.to_string(),
            binaries,
            root: root.path().to_path_buf(),
            setpriv,
            pods: Mutex::new(BTreeMap::new()),
            seq: Default::default(),
        });
        let watcher = tokio::spawn(watch_pods(shared.clone(), options.selector));
        Kubelet {
            shared,
            watcher: Some(watcher),
            root: Some(root),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// The kubelet's directory: `pods/<pod>-<uid>/` and `logs/<pod>-<uid>.log`.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// What the kubelet knows of the newest pod named `pod`.
    pub fn record(&self, pod: &str) -> Option<PodRecord> {
        let pods = self.shared.pods.lock().unwrap();
        pods.values()
            .filter(|e| e.record.lock().unwrap().name == pod)
            .max_by_key(|e| e.seq)
            .map(|e| e.record.lock().unwrap().clone())
    }

    /// Every pod the kubelet took on, oldest first (deleted ones too).
    pub fn records(&self) -> Vec<PodRecord> {
        let pods = self.shared.pods.lock().unwrap();
        let mut v: Vec<_> = pods.values().collect();
        v.sort_by_key(|e| e.seq);
        v.iter().map(|e| e.record.lock().unwrap().clone()).collect()
    }

    /// The local port standing for `pod`'s IP and `container_port`, if known.
    pub fn try_port_of(&self, pod: &str, container_port: i32) -> Option<u16> {
        self.record(pod)?.ports.get(&container_port).copied()
    }

    /// The local port standing for `pod`'s IP and `container_port`.
    pub fn port_of(&self, pod: &str, container_port: i32) -> u16 {
        self.try_port_of(pod, container_port).unwrap_or_else(|| {
            panic!(
                "kubelet: no port for {}/{pod}:{container_port}; pods: {:?}",
                self.shared.namespace,
                self.records().iter().map(|r| (&r.name, &r.ports)).collect::<Vec<_>>()
            )
        })
    }

    /// Whether the kubelet ever started `pod`'s process.
    pub fn started(&self, pod: &str) -> bool {
        self.record(pod).is_some_and(|r| r.starts > 0)
    }

    /// Whether `pod`'s process is running now.
    pub fn running(&self, pod: &str) -> bool {
        self.record(pod).is_some_and(|r| r.running)
    }

    pub fn log_path(&self, pod: &str) -> Option<PathBuf> {
        self.record(pod).map(|r| r.log)
    }

    /// The output (stdout and stderr) of `pod`'s process, every start.
    pub fn logs(&self, pod: &str) -> String {
        self.log_path(pod)
            .and_then(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Every pod's state, log path and last `lines` lines of output.
    pub fn dump(&self, lines: usize) -> String {
        let mut out = format!(
            "kubelet for namespace {} (directory {}):\n",
            self.shared.namespace,
            self.shared.root.display()
        );
        for r in self.records() {
            out.push_str(&format!(
                "--- pod {} (uid {}): starts {}, running {}, ready {}, exits {:?}, waiting {:?}, deleted {}, ports {:?}\n    log {}\n",
                r.name, r.uid, r.starts, r.running, r.ready, r.exit_codes, r.waiting, r.deleted, r.ports, r.log.display()
            ));
            let text = std::fs::read(&r.log)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            for l in &all[all.len().saturating_sub(lines)..] {
                out.push_str("    | ");
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// A pod matching `selector` that the API reports Ready and whose
    /// process this kubelet runs.
    pub async fn ready_pod(&self, selector: &str) -> Option<String> {
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.shared.namespace);
        let pods = api.list(&ListParams::default().labels(selector)).await.ok()?;
        pods.items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
            .map(|p| p.name_any())
            .find(|name| self.running(name))
    }

    /// Wait for [`Kubelet::ready_pod`]; panics (with the kubelet's dump) after `within`.
    pub async fn wait_ready_pod(&self, selector: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(p) = self.ready_pod(selector).await {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "no ready pod matching {selector} in {} within {within:?}\n{}",
                self.shared.namespace,
                self.dump(40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The local port of `container_port` on a ready pod of Deployment `name`
    /// (found through the Deployment's `spec.selector.matchLabels`).
    pub async fn deployment_port(&self, name: &str, container_port: i32, within: Duration) -> (String, u16) {
        let api: Api<Deployment> = Api::namespaced(self.shared.client.clone(), &self.shared.namespace);
        let d = api.get(name).await.expect("get deployment");
        let labels = d
            .spec
            .and_then(|s| s.selector.match_labels)
            .expect("deployment has matchLabels");
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pod = self.wait_ready_pod(&selector, within).await;
        let port = self.port_of(&pod, container_port);
        (pod, port)
    }

    /// Kill every process and wait until they are gone.
    pub async fn shutdown(mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let tasks: Vec<_> = {
            let mut pods = self.shared.pods.lock().unwrap();
            pods.values_mut()
                .filter_map(|e| {
                    let _ = e.stop.send(Stop::Shutdown);
                    e.task.take()
                })
                .collect()
        };
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        {
            let mut pods = self.shared.pods.lock().unwrap();
            for e in pods.values_mut() {
                let _ = e.stop.send(Stop::Shutdown);
                if let Some(t) = e.task.take() {
                    // Dropping the task's future drops the Child: kill_on_drop.
                    t.abort();
                }
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.dump(60));
            if let Some(root) = self.root.take() {
                eprintln!("kubelet: kept {}", root.keep().display());
            }
        }
    }
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn watch_pods(shared: Arc<Shared>, selector: Option<String>) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let mut config = watcher::Config::default();
    if let Some(s) = &selector {
        config = config.labels(s);
    }
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut listed: Option<HashSet<String>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(l) = listed.as_mut() {
                    l.insert(pod.uid().unwrap_or_default());
                }
                shared.observe(pod);
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(l) = listed.take() {
                    shared.forget_missing(&l);
                }
            }
            Ok(watcher::Event::Apply(pod)) => shared.observe(pod),
            Ok(watcher::Event::Delete(pod)) => shared.stop(&pod.uid().unwrap_or_default()),
            Err(e) => eprintln!("kubelet: watching pods of {}: {e}", shared.namespace),
        }
    }
}

impl Shared {
    fn observe(self: &Arc<Self>, pod: Pod) {
        let uid = pod.uid().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            self.stop(&uid);
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        let mut pods = self.pods.lock().unwrap();
        if pods.contains_key(&uid) || !matches!(phase.as_deref(), None | Some("Pending")) {
            return;
        }
        let name = pod.name_any();
        let base = format!("{name}-{}", &uid[..uid.len().min(8)]);
        let record = Arc::new(Mutex::new(PodRecord {
            name,
            uid: uid.clone(),
            dir: self.root.join("pods").join(&base),
            log: self.root.join("logs").join(format!("{base}.log")),
            ..Default::default()
        }));
        let (stop, stop_rx) = watch::channel(Stop::No);
        let task = tokio::spawn(run_pod(self.clone(), pod, record.clone(), stop_rx));
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        pods.insert(
            uid,
            Entry {
                seq,
                record,
                stop,
                task: Some(task),
            },
        );
    }

    fn stop(&self, uid: &str) {
        let pods = self.pods.lock().unwrap();
        if let Some(e) = pods.get(uid) {
            let _ = e.stop.send(Stop::Deleted);
        }
    }

    fn forget_missing(&self, listed: &HashSet<String>) {
        let pods = self.pods.lock().unwrap();
        for (uid, e) in pods.iter() {
            if !listed.contains(uid) {
                let _ = e.stop.send(Stop::Deleted);
            }
        }
    }
}

async fn run_pod(shared: Arc<Shared>, pod: Pod, record: Arc<Mutex<PodRecord>>, mut stop: watch::Receiver<Stop>) {
    let mut life = PodLife::new(shared, pod, record.clone());
    tokio::select! {
        _ = life.run() => {}
        _ = stop.wait_for(|s| *s != Stop::No) => {}
    }
    let why = *stop.borrow();
    // The run future (and with it the Child, kill_on_drop) is gone: wait
    // until the process is.
    let pid = record.lock().unwrap().pid.take();
    if let Some(pid) = pid {
        wait_gone(pid).await;
        let what = match why {
            Stop::Deleted => "the pod was deleted",
            _ => "the kubelet stopped",
        };
        life.log_line(&format!("==> {} killed: {what}", now()));
    }
    let mut r = record.lock().unwrap();
    r.running = false;
    r.ready = false;
    if why == Stop::Deleted {
        r.deleted = true;
    }
}

/// Wait (up to 10 s) until process `pid` has exited (gone or a zombie).
async fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            // `pid (comm) S …`: the state follows the last ')'.
            Ok(stat)
                if stat
                    .rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with(['Z', 'X'])) =>
            {
                return;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A container's state, as reported in `containerStatuses[].state`.
#[derive(Debug, Clone)]
enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        message: String,
        started_at: String,
        finished_at: String,
        container_id: String,
    },
}

impl State {
    fn json(&self) -> Value {
        match self {
            State::Waiting { reason, message } if message.is_empty() => json!({"waiting": {"reason": reason}}),
            State::Waiting { reason, message } => json!({"waiting": {"reason": reason, "message": message}}),
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
                container_id,
            } => {
                let mut t = json!({
                    "exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at,
                    "containerID": container_id,
                });
                if !message.is_empty() {
                    t["message"] = json!(message);
                }
                json!({ "terminated": t })
            }
        }
    }
}

/// Why a container could not be created.
struct NotStarted {
    reason: &'static str,
    message: String,
}

fn config_error(message: String) -> NotStarted {
    NotStarted {
        reason: "CreateContainerConfigError",
        message,
    }
}

fn mount_error(message: String) -> NotStarted {
    NotStarted {
        reason: "ContainerCreating",
        message,
    }
}

/// A container ready to start.
struct Prepared {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    /// (mountPath, host path), longest mountPath first.
    mounts: Vec<(String, PathBuf)>,
}

struct PodLife {
    shared: Arc<Shared>,
    pod: Pod,
    record: Arc<Mutex<PodRecord>>,
    accepted_at: String,
    phase: &'static str,
    state: State,
    last_state: Option<State>,
    restart_count: i32,
    ready: bool,
    ready_changed_at: String,
    ports: BTreeMap<i32, u16>,
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl PodLife {
    fn new(shared: Arc<Shared>, pod: Pod, record: Arc<Mutex<PodRecord>>) -> Self {
        let t = now();
        PodLife {
            shared,
            pod,
            record,
            accepted_at: t.clone(),
            phase: "Pending",
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
            last_state: None,
            restart_count: 0,
            ready: false,
            ready_changed_at: t,
            ports: BTreeMap::new(),
        }
    }

    fn name(&self) -> String {
        self.pod.name_any()
    }

    /// The current container's id (one per start).
    fn container_id(&self) -> String {
        format!(
            "test-kubelet://{}-{}",
            self.pod.uid().unwrap_or_default(),
            self.restart_count
        )
    }

    fn container(&self) -> Container {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first().cloned())
            .unwrap_or_default()
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn log_line(&self, line: &str) {
        let path = self.record.lock().unwrap().log.clone();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            let _ = writeln!(f, "{line}");
        }
    }

    async fn run(&mut self) {
        {
            let mut r = self.record.lock().unwrap();
            let _ = std::fs::create_dir_all(&r.dir);
            r.waiting = Some(("ContainerCreating".into(), String::new()));
        }
        self.log_line(&format!("==> {} pod {}/{}", now(), self.shared.namespace, self.name()));
        self.report().await;
        let spec = self.pod.spec.clone().unwrap_or_default();
        if spec.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
            self.set_waiting(
                "Unsupported",
                "init containers are not supported by the test kubelet".into(),
            );
            self.report().await;
            return std::future::pending().await;
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            let prepared = loop {
                match self.prepare().await {
                    Ok(p) => break p,
                    Err(e) => {
                        let changed = !matches!(&self.state, State::Waiting { reason, message } if reason == e.reason && *message == e.message);
                        if changed {
                            self.log_line(&format!("==> {} not started: {}: {}", now(), e.reason, e.message));
                            self.set_waiting(e.reason, e.message);
                            self.report().await;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            let started_at = now();
            let exit = match self.spawn(&prepared) {
                Ok(child) => {
                    self.state = State::Running {
                        started_at: started_at.clone(),
                    };
                    self.phase = "Running";
                    {
                        let mut r = self.record.lock().unwrap();
                        r.starts += 1;
                        r.running = true;
                        r.pid = child.id();
                        r.waiting = None;
                    }
                    let probe = self.container().readiness_probe;
                    if probe.is_none() {
                        self.set_ready(true);
                    }
                    self.report().await;
                    let code = self.supervise(child, probe, &prepared).await;
                    {
                        let mut r = self.record.lock().unwrap();
                        r.running = false;
                        r.pid = None;
                        r.exit_codes.push(code);
                    }
                    self.log_line(&format!("==> {} exited with code {code}", now()));
                    let reason = if code == 0 { "Completed" } else { "Error" };
                    (code, reason.to_string(), String::new())
                }
                Err(message) => {
                    self.log_line(&format!("==> {} could not start: {message}", now()));
                    self.record.lock().unwrap().exit_codes.push(128);
                    (128, "StartError".to_string(), message)
                }
            };
            let (exit_code, reason, message) = exit;
            let terminated = State::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at: now(),
                container_id: self.container_id(),
            };
            self.set_ready(false);
            let policy = self.restart_policy();
            let restart = match policy.as_str() {
                "Never" => false,
                "OnFailure" => exit_code != 0,
                _ => true,
            };
            if !restart {
                self.phase = if exit_code == 0 { "Succeeded" } else { "Failed" };
                self.state = terminated;
                self.report().await;
                return;
            }
            self.last_state = Some(terminated);
            self.restart_count += 1;
            self.set_waiting(
                "CrashLoopBackOff",
                format!(
                    "back-off {}s restarting failed container={} pod={}_{}",
                    backoff.as_secs(),
                    self.container().name,
                    self.name(),
                    self.shared.namespace
                ),
            );
            self.report().await;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    fn set_waiting(&mut self, reason: &str, message: String) {
        self.record.lock().unwrap().waiting = Some((reason.to_string(), message.clone()));
        self.state = State::Waiting {
            reason: reason.to_string(),
            message,
        };
    }

    fn set_ready(&mut self, ready: bool) {
        if self.ready != ready {
            self.ready = ready;
            self.ready_changed_at = now();
        }
        self.record.lock().unwrap().ready = ready;
    }

    /// Wait for the process to exit, probing readiness meanwhile; returns its exit code.
    async fn supervise(&mut self, mut child: Child, probe: Option<Probe>, prepared: &Prepared) -> i32 {
        let secs = |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
        let (initial, period, timeout, successes_needed, failures_allowed) = match &probe {
            Some(p) => (
                secs(p.initial_delay_seconds, 0),
                secs(p.period_seconds, 10).max(Duration::from_secs(1)),
                secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
                p.success_threshold.unwrap_or(1).max(1),
                p.failure_threshold.unwrap_or(3).max(1),
            ),
            None => (Duration::ZERO, Duration::from_secs(10), Duration::from_secs(1), 1, 3),
        };
        let mut next = tokio::time::Instant::now() + initial;
        let (mut successes, mut failures) = (0, 0);
        loop {
            tokio::select! {
                status = child.wait() => {
                    return match status {
                        Ok(s) => s.code().unwrap_or_else(|| {
                            use std::os::unix::process::ExitStatusExt;
                            128 + s.signal().unwrap_or(0)
                        }),
                        Err(_) => 255,
                    };
                }
                _ = tokio::time::sleep_until(next), if probe.is_some() => {
                    let probe = probe.as_ref().unwrap();
                    let ok = tokio::time::timeout(timeout, self.probe(probe, prepared)).await.unwrap_or(false);
                    if ok {
                        successes += 1;
                        failures = 0;
                    } else {
                        failures += 1;
                        successes = 0;
                    }
                    let was = self.ready;
                    if !was && successes >= successes_needed {
                        self.set_ready(true);
                    } else if was && failures >= failures_allowed {
                        self.set_ready(false);
                    }
                    if was != self.ready {
                        self.log_line(&format!("==> {} readiness: {}", now(), if self.ready { "ready" } else { "not ready" }));
                        self.report().await;
                    }
                    let wait = if self.ready { period } else { period.min(Duration::from_millis(250)) };
                    next = tokio::time::Instant::now() + wait;
                }
            }
        }
    }

    async fn probe(&self, probe: &Probe, prepared: &Prepared) -> bool {
        let container = self.container();
        let port = |p: &IntOrString| -> Option<u16> {
            let container_port = match p {
                IntOrString::Int(n) => *n,
                IntOrString::String(name) => {
                    container
                        .ports
                        .iter()
                        .flatten()
                        .find(|cp| cp.name.as_deref() == Some(name.as_str()))?
                        .container_port
                }
            };
            Some(
                self.ports
                    .get(&container_port)
                    .copied()
                    .unwrap_or(container_port as u16),
            )
        };
        if let Some(h) = &probe.http_get {
            let Some(p) = port(&h.port) else { return false };
            let host = h.host.clone().unwrap_or_else(|| POD_IP.into());
            if h.scheme.as_deref() == Some("HTTPS") {
                return tokio::net::TcpStream::connect((host.as_str(), p)).await.is_ok();
            }
            let headers: Vec<(String, String)> = h
                .http_headers
                .iter()
                .flatten()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect();
            return matches!(
                http_request(&host, p, h.path.as_deref().unwrap_or("/"), &headers).await,
                Ok((200..=399, _))
            );
        }
        if let Some(t) = &probe.tcp_socket {
            let Some(p) = port(&t.port) else { return false };
            let host = t.host.clone().unwrap_or_else(|| POD_IP.into());
            return tokio::net::TcpStream::connect((host.as_str(), p)).await.is_ok();
        }
        if let Some(g) = &probe.grpc {
            let p = self.ports.get(&g.port).copied().unwrap_or(g.port as u16);
            return tokio::net::TcpStream::connect((POD_IP, p)).await.is_ok();
        }
        if let Some(e) = &probe.exec {
            let mut argv: Vec<String> = e.command.clone().unwrap_or_default();
            if argv.is_empty() {
                return false;
            }
            for a in argv.iter_mut() {
                *a = remap_path(a, &prepared.mounts);
            }
            let program = self.resolve_program(&argv[0]);
            return Command::new(program)
                .args(&argv[1..])
                .env_clear()
                .envs(prepared.env.iter().cloned())
                .current_dir(&prepared.cwd)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .is_ok_and(|s| s.success());
        }
        false
    }

    /// The status subresource patch for the pod's current state.
    fn status(&self) -> Value {
        let container = self.container();
        let terminal = matches!(self.phase, "Succeeded" | "Failed");
        let cond = |type_: &str| {
            if self.ready {
                json!({"type": type_, "status": "True", "lastProbeTime": null, "lastTransitionTime": self.ready_changed_at})
            } else if terminal {
                json!({"type": type_, "status": "False", "lastProbeTime": null, "lastTransitionTime": self.ready_changed_at,
                       "reason": "PodCompleted"})
            } else {
                json!({"type": type_, "status": "False", "lastProbeTime": null, "lastTransitionTime": self.ready_changed_at,
                       "reason": "ContainersNotReady",
                       "message": format!("containers with unready status: [{}]", container.name)})
            }
        };
        let initialized = if matches!(&self.state, State::Waiting { reason, .. } if reason == "Unsupported")
            && self
                .pod
                .spec
                .as_ref()
                .is_some_and(|s| s.init_containers.as_ref().is_some_and(|c| !c.is_empty()))
        {
            json!({"type": "Initialized", "status": "False", "lastProbeTime": null, "lastTransitionTime": self.accepted_at,
                   "reason": "ContainersNotInitialized", "message": "init containers are not supported by the test kubelet"})
        } else {
            json!({"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": self.accepted_at})
        };
        let running = matches!(self.state, State::Running { .. });
        let mut statuses = vec![json!({
            "name": container.name,
            "ready": self.ready,
            "started": running,
            "restartCount": self.restart_count,
            "image": container.image.clone().unwrap_or_default(),
            "imageID": "",
            "containerID": self.container_id(),
            "state": self.state.json(),
            "lastState": self.last_state.as_ref().map(State::json).unwrap_or_else(|| json!({})),
        })];
        for other in self.pod.spec.iter().flat_map(|s| s.containers.iter().skip(1)) {
            statuses.push(json!({
                "name": other.name, "ready": false, "started": false, "restartCount": 0,
                "image": other.image.clone().unwrap_or_default(), "imageID": "",
                "state": {"waiting": {"reason": "Unsupported", "message": "the test kubelet runs only a pod's first container"}},
                "lastState": {},
            }));
        }
        json!({
            "metadata": {"uid": self.pod.uid()},
            "status": {
                "phase": self.phase,
                "hostIP": POD_IP,
                "podIP": POD_IP,
                "podIPs": [{"ip": POD_IP}],
                "startTime": self.accepted_at,
                "conditions": [
                    initialized,
                    cond("Ready"),
                    cond("ContainersReady"),
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": self.accepted_at},
                ],
                "containerStatuses": statuses,
            }
        })
    }

    /// Patch the pod's status; a vanished pod is left alone.
    async fn report(&self) {
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.shared.namespace);
        let body = self.status();
        for attempt in 0..10 {
            match api
                .patch_status(&self.name(), &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => return,
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 || e.code == 422 => {
                    // Gone, or replaced by a pod of the same name (uid differs).
                    self.log_line(&format!("==> status not reported: {}", e.message));
                    return;
                }
                Err(e) => {
                    if attempt == 9 {
                        self.log_line(&format!("==> status not reported: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
    }

    fn resolve_program(&self, name: &str) -> PathBuf {
        if let Some(p) = self.shared.binaries.get(name) {
            return p.clone();
        }
        if let Some(file) = Path::new(name).file_name().and_then(|f| f.to_str())
            && let Some(p) = self.shared.binaries.get(file)
        {
            return p.clone();
        }
        PathBuf::from(name)
    }

    /// Resolve env and volumes, allocate ports: everything before the process starts.
    async fn prepare(&mut self) -> Result<Prepared, NotStarted> {
        let container = self.container();
        let ns = self.shared.namespace.clone();
        let client = self.shared.client.clone();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let config_maps: Api<ConfigMap> = Api::namespaced(client, &ns);
        let spec = self.pod.spec.clone().unwrap_or_default();
        let dir = self.record.lock().unwrap().dir.clone();

        // Volumes.
        let mut volume_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
        for v in spec.volumes.iter().flatten() {
            let vdir = dir.join("volumes").join(&v.name);
            if let Some(h) = &v.host_path {
                volume_dirs.insert(v.name.clone(), PathBuf::from(&h.path));
                continue;
            }
            if v.empty_dir.is_some() {
                std::fs::create_dir_all(&vdir).map_err(|e| mount_error(e.to_string()))?;
                volume_dirs.insert(v.name.clone(), vdir);
                continue;
            }
            // (key → bytes, items, default mode) per source.
            let mut files: Vec<(String, Vec<u8>, u32)> = Vec::new();
            if let Some(c) = &v.config_map {
                let data = read_config_map(&config_maps, &c.name, c.optional.unwrap_or(false))
                    .await
                    .map_err(mount_error)?;
                files.extend(
                    project(&data, c.items.as_deref(), c.default_mode, "configmap", c.optional).map_err(mount_error)?,
                );
            } else if let Some(s) = &v.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                let data = read_secret(&secrets, &name, s.optional.unwrap_or(false))
                    .await
                    .map_err(mount_error)?;
                files.extend(
                    project(&data, s.items.as_deref(), s.default_mode, "secret", s.optional).map_err(mount_error)?,
                );
            } else if let Some(p) = &v.projected {
                for src in p.sources.iter().flatten() {
                    if let Some(c) = &src.config_map {
                        let data = read_config_map(&config_maps, &c.name, c.optional.unwrap_or(false))
                            .await
                            .map_err(mount_error)?;
                        files.extend(
                            project(&data, c.items.as_deref(), p.default_mode, "configmap", c.optional)
                                .map_err(mount_error)?,
                        );
                    } else if let Some(s) = &src.secret {
                        let data = read_secret(&secrets, &s.name, s.optional.unwrap_or(false))
                            .await
                            .map_err(mount_error)?;
                        files.extend(
                            project(&data, s.items.as_deref(), p.default_mode, "secret", s.optional)
                                .map_err(mount_error)?,
                        );
                    } else {
                        return Err(mount_error(format!(
                            "volume {}: only configMap and secret projections are supported by the test kubelet",
                            v.name
                        )));
                    }
                }
            } else {
                return Err(mount_error(format!(
                    "volume {}: unsupported volume type (the test kubelet has configMap, secret, projected, emptyDir and hostPath)",
                    v.name
                )));
            }
            let _ = std::fs::remove_dir_all(&vdir);
            std::fs::create_dir_all(&vdir).map_err(|e| mount_error(e.to_string()))?;
            for (path, bytes, mode) in files {
                let file = vdir.join(&path);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| mount_error(e.to_string()))?;
                }
                std::fs::write(&file, bytes).map_err(|e| mount_error(e.to_string()))?;
                // Owner-writable so the directory can be rewritten on restart.
                let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode | 0o200));
            }
            volume_dirs.insert(v.name.clone(), vdir);
        }
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let Some(vdir) = volume_dirs.get(&m.name) else {
                return Err(mount_error(format!("volume mount {}: no volume named so", m.name)));
            };
            let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => vdir.join(sub),
                None => vdir.clone(),
            };
            mounts.push((m.mount_path.trim_end_matches('/').to_string(), host));
        }
        mounts.retain(|(mp, _)| !mp.is_empty());
        mounts.sort_by_key(|(mp, _)| std::cmp::Reverse(mp.len()));

        // Ports, once per pod (its IP does not change across restarts),
        // unless another process took one since (the pod's process is not
        // running now, so a port that cannot be bound is someone else's).
        for p in container.ports.iter().flatten() {
            if p.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue;
            }
            let taken = match self.ports.get(&p.container_port) {
                Some(local) => std::net::TcpListener::bind(("0.0.0.0", *local)).is_err(),
                None => true,
            };
            if taken {
                self.ports.insert(p.container_port, free_port());
            }
        }
        self.record.lock().unwrap().ports = self.ports.clone();

        // Environment.
        let mut env: Vec<(String, String)> = Vec::new();
        let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
            if let Some(e) = env.iter_mut().find(|(n, _)| *n == k) {
                e.1 = v;
            } else {
                env.push((k, v));
            }
        };
        for from in container.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            let data = if let Some(c) = &from.config_map_ref {
                read_config_map(&config_maps, &c.name, c.optional.unwrap_or(false))
                    .await
                    .map_err(config_error)?
            } else if let Some(s) = &from.secret_ref {
                read_secret(&secrets, &s.name, s.optional.unwrap_or(false))
                    .await
                    .map_err(config_error)?
            } else {
                BTreeMap::new()
            };
            for (k, v) in data {
                set(
                    &mut env,
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v).into_owned(),
                );
            }
        }
        for e in container.env.iter().flatten() {
            let value = if let Some(from) = &e.value_from {
                if let Some(s) = &from.secret_key_ref {
                    let optional = s.optional.unwrap_or(false);
                    let data = read_secret(&secrets, &s.name, optional).await.map_err(config_error)?;
                    match data.get(&s.key) {
                        Some(v) => String::from_utf8_lossy(v).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(config_error(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                s.key, s.name
                            )));
                        }
                    }
                } else if let Some(c) = &from.config_map_key_ref {
                    let optional = c.optional.unwrap_or(false);
                    let data = read_config_map(&config_maps, &c.name, optional)
                        .await
                        .map_err(config_error)?;
                    match data.get(&c.key) {
                        Some(v) => String::from_utf8_lossy(v).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(config_error(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                c.key, c.name
                            )));
                        }
                    }
                } else if let Some(f) = &from.field_ref {
                    self.field(&f.field_path).map_err(config_error)?
                } else {
                    return Err(config_error(format!(
                        "env {}: only secretKeyRef, configMapKeyRef and fieldRef are supported by the test kubelet",
                        e.name
                    )));
                }
            } else {
                let value = e.value.clone().unwrap_or_default();
                expand(&value, |name| {
                    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
                })
            };
            set(&mut env, e.name.clone(), value);
        }
        for (name, value) in env.iter_mut() {
            *value = remap_path(value, &mounts);
            if name.to_ascii_uppercase().ends_with("PORT")
                && let Ok(p) = value.trim().parse::<i32>()
                && let Some(local) = self.ports.get(&p)
            {
                *value = local.to_string();
            }
        }

        // Command line.
        let lookup = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let command: Vec<String> = container.command.clone().unwrap_or_default();
        let args: Vec<String> = container.args.clone().unwrap_or_default();
        let mut argv: Vec<String> = if !command.is_empty() {
            command.iter().chain(args.iter()).map(|a| expand(a, lookup)).collect()
        } else if !args.is_empty() {
            args.iter().map(|a| expand(a, lookup)).collect()
        } else {
            IMAGE_CMD.iter().map(|s| s.to_string()).collect()
        };
        for a in argv.iter_mut() {
            *a = remap_path(a, &mounts);
        }
        remap_port_args(&mut argv, &self.ports);
        let program = self.resolve_program(&argv[0]);
        let cwd = match container.working_dir.as_deref().filter(|w| !w.is_empty()) {
            Some(w) => PathBuf::from(remap_path(w, &mounts)),
            None => dir.clone(),
        };
        Ok(Prepared {
            program,
            args: argv[1..].to_vec(),
            env,
            cwd,
            mounts,
        })
    }

    fn field(&self, path: &str) -> Result<String, String> {
        let meta = &self.pod.metadata;
        let spec = self.pod.spec.clone().unwrap_or_default();
        let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
            let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
            Some(map.and_then(|m| m.get(key).cloned()).unwrap_or_default())
        };
        Ok(match path {
            "metadata.name" => self.name(),
            "metadata.namespace" => self.shared.namespace.clone(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "spec.nodeName" => spec.node_name.unwrap_or_default(),
            "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
            "status.podIP" | "status.hostIP" => POD_IP.into(),
            _ => {
                if let Some(v) = keyed("metadata.labels['", meta.labels.as_ref()) {
                    v
                } else if let Some(v) = keyed("metadata.annotations['", meta.annotations.as_ref()) {
                    v
                } else {
                    return Err(format!("unsupported fieldRef {path}"));
                }
            }
        })
    }

    fn spawn(&self, p: &Prepared) -> Result<Child, String> {
        let path_var = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let program = which(&p.program, &path_var).ok_or_else(|| {
            format!(
                "exec: {:?}: executable file not found in $PATH (test kubelet binaries: {:?})",
                p.program.display().to_string(),
                self.shared.binaries.keys().collect::<Vec<_>>()
            )
        })?;
        std::fs::create_dir_all(&p.cwd).map_err(|e| format!("working directory {}: {e}", p.cwd.display()))?;
        let log_path = self.record.lock().unwrap().log.clone();
        self.log_line(&format!(
            "==> {} start #{}: {} {}",
            now(),
            self.restart_count + 1,
            program.display(),
            p.args.join(" ")
        ));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("log file {}: {e}", log_path.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = match &self.shared.setpriv {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let dir = self.record.lock().unwrap().dir.clone();
        cmd.args(&p.args)
            .env_clear()
            .env("PATH", &path_var)
            .env("HOSTNAME", self.name())
            .env("HOME", &dir)
            .env("TZ", "UTC");
        if let Some(v) = std::env::var_os("LLVM_PROFILE_FILE") {
            cmd.env("LLVM_PROFILE_FILE", v);
        }
        cmd.envs(p.env.iter().cloned())
            .current_dir(&p.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        cmd.spawn().map_err(|e| format!("starting {}: {e}", program.display()))
    }
}

/// `program` as an existing file: a path as is, a bare name through `PATH`.
fn which(program: &Path, path_var: &str) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::split_paths(path_var)
        .map(|d| d.join(program))
        .find(|p| p.is_file() && p.metadata().is_ok_and(|m| m.permissions().mode() & 0o111 != 0))
}

async fn read_secret(api: &Api<Secret>, name: &str, optional: bool) -> Result<BTreeMap<String, Vec<u8>>, String> {
    match api.get_opt(name).await {
        Ok(Some(s)) => Ok(s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()),
        Ok(None) if optional => Ok(BTreeMap::new()),
        Ok(None) => Err(format!("secret {name:?} not found")),
        Err(e) => Err(format!("get secret {name:?}: {e}")),
    }
}

async fn read_config_map(
    api: &Api<ConfigMap>,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    match api.get_opt(name).await {
        Ok(Some(c)) => {
            let mut out: BTreeMap<String, Vec<u8>> = c
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            out.extend(c.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
            Ok(out)
        }
        Ok(None) if optional => Ok(BTreeMap::new()),
        Ok(None) => Err(format!("configmap {name:?} not found")),
        Err(e) => Err(format!("get configmap {name:?}: {e}")),
    }
}

/// The files of a ConfigMap/Secret volume: every key, or only `items`.
fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    kind: &str,
    optional: Option<bool>,
) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    let mode = default_mode.unwrap_or(0o644) as u32;
    match items {
        None | Some([]) => Ok(data.iter().map(|(k, v)| (k.clone(), v.clone(), mode)).collect()),
        Some(items) => {
            let mut out = Vec::new();
            for i in items {
                match data.get(&i.key) {
                    Some(v) => out.push((i.path.clone(), v.clone(), i.mode.map(|m| m as u32).unwrap_or(mode))),
                    None if optional.unwrap_or(false) => {}
                    None => return Err(format!("{kind} references non-existent config key: {}", i.key)),
                }
            }
            Ok(out)
        }
    }
}

/// A free local TCP port (bound and released: another process could take
/// it in between, which is unlikely enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("0.0.0.0", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` becomes the variable's value
/// when `lookup` knows it and stays as written otherwise; `$$` is `$`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(a) = after.strip_prefix('(')
            && let Some(end) = a.find(')')
        {
            let name = &a[..end];
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &a[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `value` with a leading mount path (or one after `--flag=`) replaced by
/// its host directory; `mounts` longest first.
pub fn remap_path(value: &str, mounts: &[(String, PathBuf)]) -> String {
    let one = |v: &str| -> Option<String> {
        for (mp, host) in mounts {
            if v == mp {
                return Some(host.display().to_string());
            }
            if let Some(rest) = v.strip_prefix(mp.as_str())
                && rest.starts_with('/')
            {
                return Some(format!("{}{rest}", host.display()));
            }
        }
        None
    };
    if let Some(v) = one(value) {
        return v;
    }
    if value.starts_with('-')
        && let Some((flag, v)) = value.split_once('=')
        && let Some(v) = one(v)
    {
        return format!("{flag}={v}");
    }
    value.to_string()
}

/// Replace the value of `--port`/`--*-port`/`--*_port` flags that is a
/// declared containerPort by its local port.
pub fn remap_port_args(argv: &mut [String], ports: &BTreeMap<i32, u16>) {
    let is_port_flag = |f: &str| {
        let name = f.trim_start_matches('-').to_ascii_lowercase();
        f.starts_with('-') && (name == "port" || name.ends_with("-port") || name.ends_with("_port"))
    };
    let local = |v: &str| v.trim().parse::<i32>().ok().and_then(|p| ports.get(&p).copied());
    let mut i = 0;
    while i < argv.len() {
        if let Some((flag, v)) = argv[i].split_once('=') {
            if is_port_flag(flag)
                && let Some(l) = local(v)
            {
                argv[i] = format!("{flag}={l}");
            }
        } else if is_port_flag(&argv[i])
            && i + 1 < argv.len()
            && let Some(l) = local(&argv[i + 1])
        {
            argv[i + 1] = l.to_string();
            i += 1;
        }
        i += 1;
    }
}

/// A plain HTTP/1.1 request to `host:port` (GET); returns the status code and body.
pub async fn http_request(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.20\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:.200}")))?;
    let body = match text.split_once("\r\n\r\n") {
        Some((_, b)) => b.to_string(),
        None => String::new(),
    };
    Ok((code, body))
}

/// `GET http://127.0.0.1:port{path}` with a 5 s timeout.
pub async fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    tokio::time::timeout(Duration::from_secs(5), http_request(POD_IP, port, path, &[]))
        .await
        .map_err(|_| std::io::Error::other("timed out"))?
}
