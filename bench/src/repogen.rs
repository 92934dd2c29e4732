//! Repository generation: a bare remote filled with `git fast-import` (one commit, written from stdin),
//! and "a person's commit" that changes files on the remote's branch the same way.
//!
//! The mix, per 20 objects: 10 ConfigMaps in files of their own, 4 Deployments, 3 custom resources
//! (`Widget`, defined by a CRD in the repository) and 3 ConfigMaps in multi-document files of 15.
//! From [`TENANT_FROM`] objects on, [`TENANT_CONFIGMAPS`] of them are instead the ConfigMaps of one
//! more namespace, [`TENANT`]: a namespace of the size one LISTs among many larger ones.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Namespaces objects are spread over.
const NAMESPACES: usize = 10;

/// The namespace holding exactly [`TENANT_CONFIGMAPS`] ConfigMaps (and nothing else) in repositories
/// of [`TENANT_FROM`] objects and more.
pub const TENANT: &str = "tenant";

/// How many ConfigMaps [`TENANT`] holds.
pub const TENANT_CONFIGMAPS: usize = 10_000;

/// From this many objects on, a repository has the namespace [`TENANT`] (its objects counted in).
pub const TENANT_FROM: usize = 100_000;

/// How many of a repository's `n` objects are of the mix (the others are [`TENANT`]'s).
pub fn mix(n: usize) -> usize {
    if n >= TENANT_FROM { n - TENANT_CONFIGMAPS } else { n }
}

/// A generated repository.
pub struct Repo {
    /// Keeps the directory alive.
    pub _dir: tempfile::TempDir,
    /// The bare remote.
    pub remote: PathBuf,
    /// Objects in the repository (the CRD included).
    pub objects: usize,
    /// Every file, as written.
    pub files: Vec<(String, String)>,
}

impl Repo {
    /// The remote as a path: the store watches it every 50 ms.
    pub fn local_url(&self) -> String {
        self.remote.display().to_string()
    }

    /// The remote as a `file://localhost/` URL: the store treats it as a network remote (polling only).
    pub fn polled_url(&self) -> String {
        format!("file://localhost{}", self.remote.display())
    }

    /// Total YAML bytes.
    pub fn yaml_bytes(&self) -> usize {
        self.files.iter().map(|(_, t)| t.len()).sum()
    }
}

/// The namespace of object `i`.
pub fn namespace(i: usize) -> String {
    format!("ns-{}", i % NAMESPACES)
}

/// Whether kind directories are generated flat (`--flat`) instead of in gitbacked's layout.
static FLAT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether files are written as people write them (`--person`).
static PERSON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Generates every kind directory flat, as a person might write thousands of files into one
/// directory, instead of the layout gitbacked gives the objects it creates.
pub fn set_flat(flat: bool) {
    let _ = FLAT.set(flat);
}

/// Generates files as people write them: flat directories, comments, flow-style maps, quoted
/// strings, ~550-byte Deployments (and the multi-document bundles every layout has).
pub fn set_person(person: bool) {
    let _ = PERSON.set(person);
    if person {
        set_flat(true);
    }
}

fn person() -> bool {
    PERSON.get().copied().unwrap_or(false)
}

/// The path of object `i` of a kind, named `name`: where gitbacked would have created it, as the
/// `i / 20`-th object of its namespace and kind (`ns-3/configmaps/cm-3.yaml`, and from
/// [`gitbacked_git::layout::FLAT_LIMIT`] objects on `ns-3/configmaps/8c/cm-5123.yaml`), or flat.
fn path(i: usize, kind: &str, name: &str) -> String {
    let dir = format!("{}/{kind}", namespace(i));
    let before = if FLAT.get().copied().unwrap_or(false) { 0 } else { i / 20 };
    gitbacked_git::layout::canonical_path(&dir, name, before)
}

/// The single-file ConfigMap (an index for [`configmap`]) of writer `w` of `writers`: in namespace
/// `w % 10`, the writers' objects spread evenly over the `total` ConfigMaps.
pub fn spread(w: usize, writers: usize, total: usize) -> usize {
    // The k-th ConfigMap lives in namespace k % 10 (see `configmap_index`).
    let k = (w * total / writers.max(1)) / NAMESPACES * NAMESPACES + w % NAMESPACES;
    k.min(total.saturating_sub(1))
}

/// The index of the `k`-th ConfigMap that lives in a file of its own.
pub fn configmap_index(k: usize) -> usize {
    (k / 10) * 20 + k % 10
}

/// How many single-file ConfigMaps the mix of a repository of `n` objects has ([`TENANT`]'s not counted).
pub fn configmap_count(n: usize) -> usize {
    (0..mix(n)).filter(|i| i % 20 < 10).count()
}

/// Name, namespace, path and content of the `k`-th single-file ConfigMap, at `round`.
pub fn configmap(k: usize, round: usize) -> (String, String, String, String) {
    let i = configmap_index(k);
    let (name, ns) = (format!("cm-{i}"), namespace(i));
    let path = path(i, "configmaps", &name);
    let text = configmap_text(&name, &ns, i % 7, round);
    (name, ns, path, text)
}

/// The file of ConfigMap `j` of [`TENANT`], where gitbacked would have created it (or flat).
fn tenant_configmap(j: usize) -> (String, String) {
    let name = format!("cm-{j}");
    let before = if FLAT.get().copied().unwrap_or(false) { 0 } else { j };
    let path = gitbacked_git::layout::canonical_path(&format!("{TENANT}/configmaps"), &name, before);
    let text = configmap_text(&name, TENANT, j % 7, 0);
    (path, text)
}

/// A single-file ConfigMap `ns/name` of team `team`, at `round`.
fn configmap_text(name: &str, ns: &str, team: usize, round: usize) -> String {
    if person() {
        return format!(
            "# Settings of {name}, owned by team-{team}.\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  \
             namespace: {ns}\n  labels: {{team: team-{team}, app: {name}}}   # the dashboards select these\n  \
             annotations: {{gitbacked.dev/owner: platform-team}}\ndata:\n  LOG_LEVEL: info\n  \
             FEATURE_FLAGS: \"search,export,audit\"  # comma-separated\n  revision: \"{round}\"\n"
        );
    }
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    team: team-{team}\n  \
         annotations:\n    gitbacked.dev/owner: platform-team\ndata:\n  LOG_LEVEL: info\n  \
         FEATURE_FLAGS: \"search,export,audit\"\n  revision: \"{round}\"\n"
    )
}

fn deployment(i: usize) -> String {
    let ns = namespace(i);
    if person() {
        return format!(
            "# web-{i}: the front end of {ns}.\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i}\n  \
             namespace: {ns}\n  labels: {{app: web-{i}, tier: frontend}}\nspec:\n  replicas: 2  # two for availability\n  \
             selector:\n    matchLabels: {{app: web-{i}}}\n  template:\n    metadata:\n      \
             labels: {{app: web-{i}, tier: frontend}}\n    spec:\n      containers:\n        - name: web\n          \
             image: \"registry.example.com/web:1.27\"\n          args: [\"--port\", \"8080\", \"--log-level\", \"info\"]\n          \
             ports: [{{containerPort: 8080, name: http}}]\n          resources:\n            \
             requests: {{cpu: 100m, memory: 128Mi}}\n            limits: {{memory: 256Mi}}\n"
        );
    }
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i}\n  namespace: {ns}\nspec:\n  replicas: 2\n  \
         selector:\n    matchLabels:\n      app: web-{i}\n  template:\n    metadata:\n      labels:\n        app: web-{i}\n    \
         spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n        \
         resources:\n          requests:\n            cpu: 100m\n            memory: 128Mi\n"
    )
}

fn widget(i: usize) -> String {
    let ns = namespace(i);
    format!(
        "apiVersion: bench.gitbacked.dev/v1\nkind: Widget\nmetadata:\n  name: w-{i}\n  namespace: {ns}\nspec:\n  size: {}\n  \
         color: blue\n  replicas: 3\n  tier: backend\n",
        i % 7
    )
}

fn bundled(i: usize) -> String {
    let ns = namespace(i);
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: multi-{i}\n  namespace: {ns}\n  \
         labels:\n    bundle: b-{}\ndata:\n  mode: bundled\n  retries: \"3\"\n",
        i / 100
    )
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.bench.gitbacked.dev
spec:
  group: bench.gitbacked.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: self.replicas <= 100 || self.tier == 'batch'
              message: only batch widgets may have more than 100 replicas
            properties:
              size:
                type: integer
                minimum: 0
              color:
                type: string
                enum: [blue, green, red]
              replicas:
                type: integer
                default: 1
              tier:
                type: string
                default: backend
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
";

/// The files of a repository of `n` objects (plus the CRD): the mix, then [`TENANT`]'s ConfigMaps.
pub fn files(n: usize) -> Vec<(String, String)> {
    let mut out = vec![(
        "_cluster/customresourcedefinitions.apiextensions.k8s.io/widgets.bench.gitbacked.dev.yaml".to_string(),
        CRD.to_string(),
    )];
    let mut bundle: Option<(String, String)> = None;
    let mut k = 0;
    for i in 0..mix(n) {
        match i % 20 {
            0..=9 => {
                let (_, _, path, text) = configmap(k, 0);
                k += 1;
                out.push((path, text));
            }
            10..=13 => out.push((path(i, "deployments.apps", &format!("web-{i}")), deployment(i))),
            14..=16 => out.push((path(i, "widgets.bench.gitbacked.dev", &format!("w-{i}")), widget(i))),
            _ => {
                let path = format!("bundles/bundle-{}.yaml", i / 100);
                match &mut bundle {
                    Some((p, text)) if *p == path => {
                        text.push_str("---\n");
                        text.push_str(&bundled(i));
                    }
                    _ => {
                        out.extend(bundle.take());
                        bundle = Some((path, bundled(i)));
                    }
                }
            }
        }
    }
    out.extend(bundle);
    out.extend((0..n - mix(n)).map(tenant_configmap));
    out
}

/// Runs git in `dir`; fails with stderr.
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().context("git runs")?;
    if !out.status.success() {
        bail!("git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes one commit with `files` on `main` of the bare repository `remote`, on top of its tip when
/// `on_tip` (a person's commit); returns once the branch points to it.
pub fn commit(remote: &Path, files: &[(String, String)], message: &str, on_tip: bool) -> Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    commits(remote, std::iter::once((now, message.to_string(), files)), on_tip)
}

/// Writes a chain of commits (committer time, message, files) on `main` of the bare repository
/// `remote` with one `git fast-import`, the first on top of its tip when `on_tip`.
pub fn commits<'a>(
    remote: &Path,
    commits: impl Iterator<Item = (u64, String, &'a [(String, String)])>,
    on_tip: bool,
) -> Result<()> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(remote)
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("git fast-import starts")?;
    {
        let mut stdin = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().expect("stdin"));
        for (n, (time, message, files)) in commits.enumerate() {
            write!(stdin, "commit refs/heads/main\ncommitter A Person <person@example.com> {time} +0000\n")?;
            write!(stdin, "data {}\n{message}\n", message.len() + 1)?;
            if on_tip && n == 0 {
                stdin.write_all(b"from refs/heads/main^0\n")?;
            }
            for (path, text) in files {
                write!(stdin, "M 100644 inline {path}\ndata {}\n", text.len())?;
                stdin.write_all(text.as_bytes())?;
                stdin.write_all(b"\n")?;
            }
            stdin.write_all(b"\n")?;
        }
        stdin.write_all(b"done\n")?;
        stdin.flush()?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("git fast-import failed: {status}");
    }
    Ok(())
}

/// Generates a repository of `n` objects: a bare remote on branch `main` with one commit.
pub fn generate(n: usize) -> Result<Repo> {
    let mut repo = generate_files(files(n))?;
    repo.objects = n + 1;
    Ok(repo)
}

/// Generates a bare remote on branch `main` with one commit of `files` (`objects` counts the files).
pub fn generate_files(files: Vec<(String, String)>) -> Result<Repo> {
    let dir = tempfile::Builder::new().prefix("gitbacked-bench-").tempdir()?;
    let remote = dir.path().join("remote.git");
    git(dir.path(), &["init", "--quiet", "--bare", "--initial-branch=main", remote.to_str().expect("utf-8 path")])?;
    commit(&remote, &files, &format!("{} files", files.len()), false)?;
    Ok(Repo { _dir: dir, remote, objects: files.len(), files })
}

/// A sentence of a field's description, long as generated API documentation is.
fn description(field: &str, n: usize) -> String {
    format!(
        "{field} is the setting number {n} of this resource; it tells the controller how to reconcile the \
         application when the source repository changes, which revision to track, how often to retry and \
         what to do when a sync fails. Defaults to the value of the project when empty; see the user guide \
         for the complete list of values, their meaning and how they interact with the other settings."
    )
}

/// A CustomResourceDefinition of argo-cd's size (about 230 KB): `groups` objects of 12 described
/// string fields each under `spec`, every line as `kubectl` and controller-gen write them.
fn big_crd(kind: &str, groups: usize) -> String {
    let plural = format!("{}s", kind.to_lowercase());
    let mut out = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  labels:\n    \
         app.kubernetes.io/name: {plural}.argoproj.io\n    app.kubernetes.io/part-of: argocd\n  \
         name: {plural}.argoproj.io\nspec:\n  group: argoproj.io\n  names:\n    kind: {kind}\n    \
         listKind: {kind}List\n    plural: {plural}\n    singular: {}\n  scope: Namespaced\n  versions:\n  \
         - name: v1alpha1\n    schema:\n      openAPIV3Schema:\n        description: {kind} is a definition of \
         {kind} resource.\n        properties:\n          apiVersion:\n            type: string\n          \
         kind:\n            type: string\n          metadata:\n            type: object\n          spec:\n            \
         properties:\n",
        kind.to_lowercase()
    );
    for g in 0..groups {
        let group = format!("group{g}");
        out.push_str(&format!(
            "              {group}:\n                description: {}\n                properties:\n",
            description(&group, g)
        ));
        for f in 0..12 {
            let field = format!("field{f}");
            out.push_str(&format!(
                "                  {field}:\n                    description: {}\n                    type: string\n",
                description(&field, g * 12 + f)
            ));
        }
        out.push_str("                type: object\n");
    }
    out.push_str("            type: object\n        required:\n        - metadata\n        - spec\n        type: object\n    served: true\n    storage: true\n");
    out
}

/// A small ConfigMap of the `argocd` namespace, as a file of its own or a document of a bundle.
pub fn small_configmap(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels:\n    app.kubernetes.io/name: {name}\n    \
         app.kubernetes.io/part-of: argocd\n  name: {name}\n  namespace: argocd\ndata:\n  \
         timeout.reconciliation: 180s\n  url: https://argocd.example.com\n"
    )
}

/// A Deployment of the `argocd` namespace (one container, probes, volumes), as argo-cd ships them.
pub fn small_deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  labels:\n    app.kubernetes.io/name: {name}\n    \
         app.kubernetes.io/part-of: argocd\n  name: {name}\n  namespace: argocd\nspec:\n  selector:\n    \
         matchLabels:\n      app.kubernetes.io/name: {name}\n  template:\n    metadata:\n      labels:\n        \
         app.kubernetes.io/name: {name}\n    spec:\n      containers:\n      - args:\n        - /usr/local/bin/{name}\n        \
         env:\n        - name: ARGOCD_LOG_LEVEL\n          value: info\n        image: quay.io/argoproj/argocd:v2.13.0\n        \
         imagePullPolicy: Always\n        name: {name}\n        ports:\n        - containerPort: 8080\n        \
         readinessProbe:\n          httpGet:\n            path: /healthz\n            port: 8080\n          \
         initialDelaySeconds: 3\n          periodSeconds: 30\n        volumeMounts:\n        - mountPath: /tmp\n          \
         name: tmp\n      serviceAccountName: {name}\n      volumes:\n      - emptyDir: {{}}\n        name: tmp\n"
    )
}

/// argo-cd's `install.yaml` shape: 59 documents, 1.9 MB, nearly all of it 8 CRDs with long
/// descriptions, then service accounts, RBAC, ConfigMaps, Secrets, Services and Deployments.
pub fn install_yaml() -> String {
    let names = [
        "application-controller",
        "applicationset-controller",
        "dex-server",
        "notifications-controller",
        "redis",
        "repo-server",
        "server",
    ];
    let mut docs: Vec<String> =
        ["Application", "ApplicationSet", "AppProject", "Cluster", "Repository", "Notification", "Rollout", "Workflow"]
            .iter()
            .map(|kind| big_crd(kind, 37))
            .collect();
    for name in names {
        docs.push(format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  labels:\n    app.kubernetes.io/name: argocd-{name}\n  name: argocd-{name}\n  namespace: argocd\n"
        ));
    }
    let rule = "- apiGroups:\n  - '*'\n  resources:\n  - '*'\n  verbs:\n  - get\n  - list\n  - watch\n";
    for name in &names[..6] {
        docs.push(format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: argocd-{name}\n  namespace: argocd\nrules:\n{rule}"));
        docs.push(format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: argocd-{name}\nrules:\n{rule}"));
        let subject = format!("subjects:\n- kind: ServiceAccount\n  name: argocd-{name}\n  namespace: argocd\n");
        docs.push(format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: argocd-{name}\n  namespace: argocd\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: argocd-{name}\n{subject}"));
        docs.push(format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: argocd-{name}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: argocd-{name}\n{subject}"));
    }
    for name in [
        "cm",
        "cmd-params-cm",
        "gpg-keys-cm",
        "notifications-cm",
        "rbac-cm",
        "ssh-known-hosts-cm",
        "tls-certs-cm",
        "redis-ha-cm",
    ] {
        docs.push(small_configmap(&format!("argocd-{name}")));
    }
    for name in ["notifications-secret", "secret"] {
        docs.push(format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: argocd-{name}\n  namespace: argocd\ntype: Opaque\n"
        ));
    }
    for name in &names[2..6] {
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: argocd-{name}\n  namespace: argocd\nspec:\n  ports:\n  - name: http\n    port: 8080\n    targetPort: 8080\n  selector:\n    app.kubernetes.io/name: argocd-{name}\n"
        ));
    }
    for name in &names[1..] {
        docs.push(small_deployment(&format!("argocd-{name}")));
    }
    docs.join("---\n")
}

/// The person changes the first `count` single-file ConfigMaps from `first` on, at `round`;
/// returns their names.
pub fn change_configmaps(repo: &Repo, first: usize, count: usize, round: usize) -> Result<Vec<String>> {
    let total = configmap_count(repo.objects - 1);
    let (mut names, mut files) = (Vec::new(), Vec::new());
    for k in first..first + count {
        let (name, _, path, text) = configmap(k % total, round);
        names.push(name);
        files.push((path, text));
    }
    commit(&repo.remote, &files, &format!("change {count} configmaps"), true)?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_get_objects_of_their_own_in_every_namespace() {
        let total = configmap_count(100_000);
        let picked: Vec<usize> = (0..16).map(|w| spread(w, 16, total)).collect();
        assert!(picked.windows(2).all(|p| p[0] < p[1] && p[1] < total), "{picked:?}");
        let namespaces: std::collections::HashSet<String> = picked.iter().map(|&k| configmap(k, 0).1).collect();
        assert_eq!(namespaces.len(), 10);
        assert_eq!(configmap(picked[3], 0).1, "ns-3");
    }

    #[test]
    fn from_100k_objects_one_namespace_holds_exactly_10k_configmaps_of_the_n() {
        for (n, tenant) in [(99_980, 0), (100_000, TENANT_CONFIGMAPS)] {
            let files = files(n);
            let documents: usize = files.iter().map(|(_, text)| text.matches("\nkind: ").count()).sum();
            assert_eq!(documents, n + 1, "the objects and the CRD");
            let prefix = format!("{TENANT}/configmaps/");
            let held: Vec<&String> = files.iter().filter(|(p, _)| p.starts_with(&prefix)).map(|(_, t)| t).collect();
            assert_eq!(held.len(), tenant);
            assert!(held.iter().all(|t| t.contains("kind: ConfigMap\n") && t.contains("namespace: tenant\n")));
        }
    }
}
