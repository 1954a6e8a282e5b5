//! Secrets from files, rotated live.
//!
//! Every secret setting `X` may instead be given as `X_FILE`, a file holding it (the
//! Kubernetes secret-volume convention; a trailing newline is ignored). Those files are
//! re-read every second and on SIGHUP. A changed value is checked by its setting's own
//! parser and then applied: new upstream credentials to the next upstream call (a call
//! in flight finishes with the credentials it started with), new sealed-result keys and
//! webhook secrets to the next verification. A value that does not hold is refused with
//! an error log, and the one in force stays. When the upstream credentials change, so
//! does the account identity: the in-memory cache is emptied and the shared cache moves
//! to the new account's key space, so a new account never reads the old one's answers.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

/// A value that can be replaced while readers hold the one they took.
#[derive(Debug)]
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    /// A live value, starting at `value`.
    pub fn new(value: T) -> Self {
        Self(RwLock::new(Arc::new(value)))
    }

    /// The value now (kept by the caller for as long as it needs it).
    pub fn get(&self) -> Arc<T> {
        self.0
            .read()
            .map(|v| v.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Replaces the value for every later reader.
    pub fn set(&self, value: T) {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(value);
    }
}

/// One watched file: the setting it holds, and what it held last.
#[derive(Debug)]
pub struct Watched {
    /// The setting (`FINGERPRINT_SECRET_API_KEY`, …).
    pub setting: &'static str,
    /// The file.
    pub path: PathBuf,
    /// A digest of the value last taken (never the value: this is `Debug`).
    last: Option<[u8; 32]>,
}

impl Watched {
    /// A file holding `setting`, whose value at start-up was `current`.
    pub fn new(setting: &'static str, path: PathBuf, current: Option<&str>) -> Self {
        Self {
            setting,
            path,
            last: current.map(digest),
        }
    }
}

fn digest(value: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(value.as_bytes()).into()
}

/// Reads a secret file: its text without the trailing newline.
pub fn read(path: &std::path::Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// When a watched file last changed (`None` when it cannot be read).
pub fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// When watched files are looked at again: every second, and at once on SIGHUP.
pub struct Recheck {
    every: tokio::time::Interval,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Recheck {
    /// Starts the clock (and listens for SIGHUP where there is one).
    pub fn new() -> Self {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            every,
            #[cfg(unix)]
            hup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    /// Waits for the next look; `true` when SIGHUP asked for it (re-read even if the
    /// files look unchanged).
    pub async fn next(&mut self) -> bool {
        #[cfg(unix)]
        if let Some(hup) = self.hup.as_mut() {
            return tokio::select! {
                _ = self.every.tick() => false,
                _ = hup.recv() => true,
            };
        }
        self.every.tick().await;
        false
    }
}

impl Default for Recheck {
    fn default() -> Self {
        Self::new()
    }
}

/// Re-reads the files every second and on SIGHUP, and calls `apply` with each changed
/// value (`apply` checks it, and answers whether it was taken).
pub fn watch(
    mut files: Vec<Watched>,
    apply: impl Fn(&'static str, &str) -> Result<(), String> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut recheck = Recheck::new();
        loop {
            recheck.next().await;
            for file in &mut files {
                let value = match read(&file.path) {
                    Ok(v) => v,
                    Err(e) => {
                        // Mid-swap (a secret volume replaces its files) or gone: keep the
                        // value in force; say so once per change.
                        tracing::debug!(setting = file.setting, file = %file.path.display(), error = %e, "secret file unreadable; keeping the value in force");
                        continue;
                    }
                };
                let seen = digest(&value);
                if file.last == Some(seen) {
                    continue;
                }
                match apply(file.setting, &value) {
                    Ok(()) => {
                        tracing::info!(setting = file.setting, "secret rotated");
                        file.last = Some(seen);
                    }
                    Err(e) => {
                        tracing::error!(setting = file.setting, error = %e, "new secret refused; the one in force stays");
                        // Not again until the file changes again.
                        file.last = Some(seen);
                    }
                }
            }
        }
    })
}
