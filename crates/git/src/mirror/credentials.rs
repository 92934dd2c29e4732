//! How git reaches a remote: the ssh command (key, known_hosts, strict host key checking), the
//! https token, and keeping credentials out of logs and errors.
//!
//! A token is only ever handed to git through the environment (`GIT_CONFIG_*`), never through a
//! command line or a file gitbacked writes.

use std::path::{Path, PathBuf};

/// The environment variable an https token can come from when no token file is given.
pub const TOKEN_ENV: &str = "GITBACKED_GIT_TOKEN";

/// The user name sent with a token when the URL names none: GitHub accepts it for installation and
/// personal access tokens, GitLab and Gitea accept any user name with a token as the password.
pub const TOKEN_USER: &str = "x-access-token";

/// What gitbacked hands to git to reach the remote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// ssh: the private key (`ssh -i KEY -o IdentitiesOnly=yes`); default: the agent and ssh config.
    pub ssh_key: Option<PathBuf>,
    /// ssh: the known_hosts file the server's host key must be in; default: ssh's own files.
    pub known_hosts: Option<PathBuf>,
    /// http(s): a file holding an access token, read before every fetch and push (so it can be
    /// rotated); default: the `GITBACKED_GIT_TOKEN` environment variable, else git's credential helpers.
    pub token_file: Option<PathBuf>,
}

/// A token: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from the contents of a file or variable (surrounding whitespace removed); `None` when empty.
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        (!text.is_empty()).then(|| Token(text.to_string()))
    }

    /// The token itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value of the `Authorization` header git sends: Basic, with the token as the password.
    pub fn authorization(&self, user: &str) -> String {
        format!("Basic {}", base64(format!("{user}:{}", self.0).as_bytes()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Standard base64 with padding (RFC 4648), for the Basic `Authorization` header.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The URL's scheme in lower case (`https`, `ssh`, …), `None` for local paths and scp-style
/// `user@host:path`.
fn scheme(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once("://")?;
    scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)).then(|| scheme.to_ascii_lowercase())
}

/// Whether git reaches `url` over http or https (where a token applies).
pub fn is_http(url: &str) -> bool {
    matches!(scheme(url).as_deref(), Some("http" | "https"))
}

/// Whether git reaches `url` over ssh: `ssh://`, `git+ssh://`, or scp-style `[user@]host:path`.
pub fn is_ssh(url: &str) -> bool {
    match scheme(url).as_deref() {
        Some(s) => matches!(s, "ssh" | "git+ssh" | "ssh+git"),
        // git's rule: a colon before the first slash makes it scp-style, unless it is a local path.
        None => url.find(':').is_some_and(|colon| !url[..colon].contains('/') && !url.starts_with('.')),
    }
}

/// The user name and password in a URL's authority, if any.
fn userinfo(url: &str) -> Option<(&str, Option<&str>)> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (info, _) = authority.rsplit_once('@')?;
    Some(match info.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (info, None),
    })
}

/// The user name to send a token with: the URL's own, else [`TOKEN_USER`]. `None` when the URL
/// carries a password itself (then the URL's credentials are used as they are).
pub fn token_user(url: &str) -> Option<&str> {
    match userinfo(url) {
        Some((_, Some(_))) => None,
        Some((user, None)) if !user.is_empty() => Some(user),
        _ => Some(TOKEN_USER),
    }
}

/// A URL without the password or token it may carry, for logs and errors:
/// `https://user:secret@host/r.git` → `https://***@host/r.git`. For ssh URLs a user name alone is
/// not a secret and stays.
pub fn redact_url(url: &str) -> String {
    redact_urls_in(url)
}

/// `text` with the credentials of every URL in it replaced by `***` (see [`redact_url`]).
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme runs back from `://` over scheme characters.
        let scheme_start = rest[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || "+-.".contains(*c))
            .last()
            .map_or(at, |(i, _)| i);
        let authority_start = at + 3;
        let authority_len = rest[authority_start..]
            .find(|c: char| "/?#'\"<>`".contains(c) || c.is_whitespace())
            .unwrap_or(rest.len() - authority_start);
        let authority = &rest[authority_start..authority_start + authority_len];
        out.push_str(&rest[..authority_start]);
        match authority.rsplit_once('@') {
            Some((info, host)) => {
                let ssh = matches!(rest[scheme_start..at].to_ascii_lowercase().as_str(), "ssh" | "git+ssh" | "ssh+git");
                if ssh && !info.contains(':') {
                    out.push_str(authority);
                } else {
                    out.push_str("***@");
                    out.push_str(host);
                }
            }
            None => out.push_str(authority),
        }
        rest = &rest[authority_start + authority_len..];
    }
    out.push_str(rest);
    out
}

/// `s` quoted for a POSIX shell (git runs `GIT_SSH_COMMAND` through `sh -c`).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A file given for ssh that cannot be named on ssh's command line.
#[derive(Debug, thiserror::Error)]
pub enum SshPathError {
    /// The path cannot be made absolute.
    #[error("{what} {}: {source}", path.display())]
    Absolute {
        /// The file's role: the ssh key, the known_hosts file.
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The path is not UTF-8, or holds a quote or a line break.
    #[error("{what} {}: the path is not UTF-8 or contains a quote or a line break", path.display())]
    Unquotable {
        /// The file's role.
        what: &'static str,
        /// The path given.
        path: PathBuf,
    },
}

/// A path for an ssh option: absolute, valid UTF-8, `%` escaped (ssh expands `%` tokens in
/// identity and known_hosts files).
fn ssh_path(what: &'static str, path: &Path) -> Result<String, SshPathError> {
    let absolute = std::path::absolute(path).map_err(|source| SshPathError::Absolute {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    match absolute.to_str() {
        Some(text) if !text.contains(['"', '\n', '\r']) => Ok(text.replace('%', "%%")),
        _ => Err(SshPathError::Unquotable { what, path: path.to_path_buf() }),
    }
}

/// The ssh command line git runs (`GIT_SSH_COMMAND`) when a key or a known_hosts file is given:
/// only that key, only that known_hosts file, strict host key checking, and never a prompt.
pub fn ssh_command(key: Option<&Path>, known_hosts: Option<&Path>) -> Result<String, SshPathError> {
    let mut command = String::from("ssh");
    if let Some(key) = key {
        command.push_str(&format!(" -i {} -o IdentitiesOnly=yes", shell_quote(&ssh_path("the ssh key", key)?)));
    }
    if let Some(known_hosts) = known_hosts {
        // ssh splits option values at whitespace (known_hosts may list several files): quote it.
        let path = ssh_path("the known_hosts file", known_hosts)?;
        let path = if path.contains(char::is_whitespace) { format!("\"{path}\"") } else { path };
        command.push_str(&format!(" -o {}", shell_quote(&format!("UserKnownHostsFile={path}"))));
    }
    command.push_str(" -o StrictHostKeyChecking=yes -o BatchMode=yes");
    Ok(command)
}

/// The ssh command used when neither a key nor a known_hosts file is given and the user has not
/// chosen one (`GIT_SSH_COMMAND`, `GIT_SSH`, `core.sshCommand`): ssh config and agent as usual,
/// but never a prompt (an unknown host key fails instead of asking).
pub const BATCH_SSH_COMMAND: &str = "ssh -o BatchMode=yes";

/// Replaces every occurrence of the secrets in `text` with `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = redact_urls_in(text);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact_url("https://user:secret@example.com/r.git"), "https://***@example.com/r.git");
        assert_eq!(redact_url("https://ghp_token@example.com/r.git"), "https://***@example.com/r.git");
        assert_eq!(redact_url("https://user:secret@example.com"), "https://***@example.com");
        assert_eq!(redact_url("https://example.com/a@b"), "https://example.com/a@b");
        assert_eq!(redact_url("/srv/state.git"), "/srv/state.git");
        assert_eq!(redact_url("ssh://git@example.com/r.git"), "ssh://git@example.com/r.git");
        assert_eq!(redact_url("ssh://git:pw@example.com/r.git"), "ssh://***@example.com/r.git");
        assert_eq!(redact_url("git@example.com:r.git"), "git@example.com:r.git");
        assert_eq!(
            redact_urls_in("fatal: unable to access 'https://a:b@h/x/': 'http://c@d' and ftp://e:f@g"),
            "fatal: unable to access 'https://***@h/x/': 'http://***@d' and ftp://***@g"
        );
    }

    #[test]
    fn url_kinds() {
        assert!(is_http("https://h/r.git") && is_http("HTTP://h/r.git") && !is_http("ssh://h/r"));
        assert!(is_ssh("ssh://git@h/r") && is_ssh("git@github.com:org/repo.git") && is_ssh("host:repo"));
        assert!(!is_ssh("/srv/a:b") && !is_ssh("./a:b") && !is_ssh("file:///srv") && !is_ssh("git://h/r"));
        assert_eq!(token_user("https://h/r.git"), Some(TOKEN_USER));
        assert_eq!(token_user("https://oauth2@h/r.git"), Some("oauth2"));
        assert_eq!(token_user("https://u:p@h/r.git"), None);
    }

    #[test]
    fn ssh_commands_quote_paths() {
        let command = ssh_command(Some(Path::new("/k/id it's%")), Some(Path::new("/k/known hosts"))).unwrap();
        assert_eq!(
            command,
            r#"ssh -i '/k/id it'\''s%%' -o IdentitiesOnly=yes -o 'UserKnownHostsFile="/k/known hosts"' -o StrictHostKeyChecking=yes -o BatchMode=yes"#
        );
        assert!(ssh_command(Some(Path::new("/k/a\"b")), None).is_err());
        let relative = ssh_command(None, Some(Path::new("kh"))).unwrap();
        assert!(relative.contains(&format!("UserKnownHostsFile={}/kh", std::env::current_dir().unwrap().display())));
    }

    #[test]
    fn tokens_are_not_printed() {
        let token = Token::new(" s3cret\n").unwrap();
        assert_eq!(token.expose(), "s3cret");
        assert!(!format!("{token:?}").contains("s3cret"));
        assert_eq!(token.authorization("x-access-token"), format!("Basic {}", base64(b"x-access-token:s3cret")));
        assert!(Token::new("  \n").is_none());
        let scrubbed = scrub("token s3cret in https://u:s3cret@h/", &["s3cret".into()]);
        assert_eq!(scrubbed, "token *** in https://***@h/");
    }
}
