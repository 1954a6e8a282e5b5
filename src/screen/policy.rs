//! The edge policy file: which requests are analysed (the scope), the rules that turn
//! an analysis into an action, and the default.
//!
//! ```toml
//! default = "allow"                 # allow, deny or flag; when no rule matches
//!
//! [scope]                           # only these requests are analysed
//! hosts = ["shop.example.com", "*.example.org"]   # absent or empty: any host
//! paths = ["/login", "/signup"]     # path prefixes; at least one
//!
//! [[rule]]                          # first match wins
//! name = "signed-agents"
//! action = "flag"
//! bot_identity = ["signed"]
//!
//! [[rule]]
//! name = "other-bots"
//! action = "deny"
//! bot = true
//! ```
//!
//! A rule matches when every condition it names holds; a list holds when any of its
//! words equals the analysis's (in any case). Conditions: `bot` (a bot was found or
//! not), `bot_category`, `bot_identity`, `bot_confidence`, `bot_provider`, `bot_name`,
//! `proxy`, `proxy_confidence`, `vpn`, `vpn_confidence`, `datacenter` (an address of
//! the client is a data centre's), `hosts` and `paths` (as in the scope).

use serde::Deserialize;

use crate::proto::v1::AnalyzeRequestResponse;

/// What a decision does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pass it.
    Allow,
    /// Refuse it.
    Deny,
    /// Pass it, marked by the decision headers.
    Flag,
}

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    default: Action,
    scope: Scope,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default)]
struct Scope {
    hosts: Vec<Host>,
    paths: Vec<String>,
}

#[derive(Debug, Clone)]
enum Host {
    Exact(String),
    /// `*.example.org`: any name ending in `.example.org`.
    Suffix(String),
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    action: Action,
    when: Conditions,
    scope: Scope,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Conditions {
    bot: Option<bool>,
    #[serde(default)]
    bot_category: Vec<String>,
    #[serde(default)]
    bot_identity: Vec<String>,
    #[serde(default)]
    bot_confidence: Vec<String>,
    #[serde(default)]
    bot_provider: Vec<String>,
    #[serde(default)]
    bot_name: Vec<String>,
    proxy: Option<bool>,
    #[serde(default)]
    proxy_confidence: Vec<String>,
    vpn: Option<bool>,
    #[serde(default)]
    vpn_confidence: Vec<String>,
    datacenter: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: Option<Action>,
    scope: ScopeFile,
    #[serde(default)]
    rule: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeFile {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    action: Action,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(flatten)]
    when: Conditions,
}

/// The rule a decision followed: its name and action (`None` for the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// The matching rule's name.
    pub rule: Option<&'a str>,
    /// What to do.
    pub action: Action,
}

// === impl Policy ===

impl Policy {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let scope = Scope::parse(file.scope.hosts, file.scope.paths, "scope")?;
        if scope.paths.is_empty() {
            return Err(
                "scope.paths must list at least one path prefix (\"/\" for every path)".into(),
            );
        }
        let mut rules = Vec::with_capacity(file.rule.len());
        for (i, r) in file.rule.into_iter().enumerate() {
            let valid = !r.name.is_empty()
                && r.name.len() <= 64
                && r.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid {
                return Err(format!(
                    "rule {i}: name must be 1 to 64 letters, digits, '-', '_' or '.'"
                ));
            }
            if rules.iter().any(|x: &Rule| x.name == r.name) {
                return Err(format!("rule {:?} appears twice", r.name));
            }
            let scope = Scope::parse(r.hosts, r.paths, &format!("rule {:?}", r.name))?;
            rules.push(Rule {
                name: r.name,
                action: r.action,
                when: r.when,
                scope,
            });
        }
        Ok(Self {
            default: file.default.unwrap_or(Action::Allow),
            scope,
            rules,
        })
    }

    /// Whether a request to `host` and `path` is analysed at all.
    pub fn in_scope(&self, host: &str, path: &str) -> bool {
        self.scope.contains(host, path)
    }

    /// The rules, by name, for what the logs say on a reload.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// What to do with a request to `host` and `path` that the vendor analysed.
    pub fn judge(&self, host: &str, path: &str, a: &AnalyzeRequestResponse) -> Verdict<'_> {
        self.rules
            .iter()
            .find(|r| r.scope.contains(host, path) && r.when.hold(a))
            .map_or(
                Verdict {
                    rule: None,
                    action: self.default,
                },
                |r| Verdict {
                    rule: Some(&r.name),
                    action: r.action,
                },
            )
    }
}

// === impl Scope ===

impl Scope {
    fn parse(hosts: Vec<String>, paths: Vec<String>, what: &str) -> Result<Self, String> {
        let mut scope = Scope::default();
        for h in hosts {
            let h = h.trim().to_ascii_lowercase();
            let name = h.strip_prefix("*.").unwrap_or(&h);
            let valid = !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'));
            if !valid {
                return Err(format!(
                    "{what}: host {h:?} is not a host name (or *.suffix)"
                ));
            }
            scope.hosts.push(match h.strip_prefix("*.") {
                Some(suffix) => Host::Suffix(format!(".{suffix}")),
                None => Host::Exact(h),
            });
        }
        for p in paths {
            if !p.starts_with('/') || p.len() > 1024 {
                return Err(format!(
                    "{what}: path {p:?} must start with '/' (a prefix of request paths)"
                ));
            }
            scope.paths.push(p);
        }
        Ok(scope)
    }

    /// Empty lists hold for anything.
    fn contains(&self, host: &str, path: &str) -> bool {
        let host_ok = self.hosts.is_empty() || {
            // The port is not part of the name.
            let name = strip_port(host);
            self.hosts.iter().any(|h| match h {
                Host::Exact(e) => name.eq_ignore_ascii_case(e),
                Host::Suffix(s) => {
                    name.len() > s.len()
                        && name
                            .get(name.len() - s.len()..)
                            .is_some_and(|end| end.eq_ignore_ascii_case(s))
                }
            })
        };
        host_ok
            && (self.paths.is_empty() || self.paths.iter().any(|p| path.starts_with(p.as_str())))
    }
}

/// `host` without a `:port` (IPv6 literals keep their brackets).
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

// === impl Conditions ===

impl Conditions {
    fn hold(&self, a: &AnalyzeRequestResponse) -> bool {
        let bot = a.bot_info.as_ref();
        let any = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|w| w.eq_ignore_ascii_case(v)))
        };
        let datacenter = a.ip_info.as_ref().is_some_and(|i| {
            [&i.v4, &i.v6]
                .into_iter()
                .flatten()
                .any(|d| d.datacenter_result == Some(true))
        });
        self.bot.is_none_or(|b| b == bot.is_some())
            && any(&self.bot_category, bot.and_then(|b| b.category.as_deref()))
            && any(&self.bot_identity, bot.and_then(|b| b.identity.as_deref()))
            && any(
                &self.bot_confidence,
                bot.and_then(|b| b.confidence.as_deref()),
            )
            && any(&self.bot_provider, bot.and_then(|b| b.provider.as_deref()))
            && any(&self.bot_name, bot.and_then(|b| b.name.as_deref()))
            && self.proxy.is_none_or(|p| a.proxy == Some(p))
            && any(&self.proxy_confidence, a.proxy_confidence.as_deref())
            && self.vpn.is_none_or(|v| a.vpn == Some(v))
            && any(&self.vpn_confidence, a.vpn_confidence.as_deref())
            && self.datacenter.is_none_or(|d| d == datacenter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{BotInfo, IpDetails, IpInfo};

    const FILE: &str = r#"
default = "allow"
[scope]
hosts = ["shop.example.com", "*.example.org"]
paths = ["/login", "/signup"]
[[rule]]
name = "signed"
action = "flag"
bot_identity = ["signed"]
[[rule]]
name = "dc"
action = "deny"
datacenter = true
paths = ["/signup"]
[[rule]]
name = "bots"
action = "deny"
bot = true
"#;

    #[test]
    fn scope_is_hosts_and_path_prefixes() {
        let p = Policy::parse(FILE).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.in_scope("shop.example.com", "/login?x=1"));
        assert!(p.in_scope("SHOP.example.com:8443", "/signup/step2"));
        assert!(p.in_scope("a.b.example.org", "/login"));
        assert!(
            !p.in_scope("example.org", "/login"),
            "*. needs a label before"
        );
        assert!(!p.in_scope("shop.example.com", "/static/app.js"));
        assert!(!p.in_scope("evil.com", "/login"));
    }

    #[test]
    fn the_first_matching_rule_wins_else_the_default() {
        let p = Policy::parse(FILE).unwrap_or_else(|e| panic!("{e}"));
        let bot = |identity: &str| AnalyzeRequestResponse {
            bot_info: Some(BotInfo {
                identity: Some(identity.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = p.judge("shop.example.com", "/login", &bot("SIGNED"));
        assert_eq!((v.rule, v.action), (Some("signed"), Action::Flag));
        let v = p.judge("shop.example.com", "/login", &bot("unknown"));
        assert_eq!((v.rule, v.action), (Some("bots"), Action::Deny));
        let dc = AnalyzeRequestResponse {
            ip_info: Some(IpInfo {
                v6: Some(IpDetails {
                    datacenter_result: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(p.judge("shop.example.com", "/signup", &dc).rule, Some("dc"));
        let v = p.judge("shop.example.com", "/login", &dc);
        assert_eq!(
            (v.rule, v.action),
            (None, Action::Allow),
            "dc is for /signup only"
        );
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        for (text, says) in [
            ("[scope]\npaths = []", "at least one path"),
            ("[scope]\npaths = [\"login\"]", "must start with '/'"),
            (
                "[scope]\npaths = [\"/\"]\n[[rule]]\nname = \"a\"\naction = \"block\"",
                "block",
            ),
            (
                "[scope]\npaths = [\"/\"]\n[[rule]]\nname = \"a\"\naction = \"deny\"\nbots = true",
                "bots",
            ),
            (
                "[scope]\npaths = [\"/\"]\n[[rule]]\nname = \"a b\"\naction = \"deny\"",
                "name",
            ),
            ("[scope]\nhosts = [\"a/b\"]\npaths = [\"/\"]", "host"),
        ] {
            let e = Policy::parse(text).err().unwrap_or_default();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
