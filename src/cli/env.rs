//! Environment rules, the same for both faces: isolate's `-E` and the
//! native `--env` take `VAR=VALUE` (set it), `VAR` (pass it from isobox's
//! own environment) and `VAR=` (remove it), applied in order.
//!
//! The faces differ only where they always have: the environment a run
//! starts from, what `VAR` does when isobox's environment lacks it
//! ([`WhenAbsent`]) and how a bad rule is worded. So the rule and its
//! application live here, the wording with each face.

/// One environment rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvRule {
    /// `VAR=VALUE`: set the variable.
    Set(String, String),
    /// `VAR`: copy the variable from isobox's own environment.
    Pass(String),
    /// `VAR=`: remove the variable.
    Unset(String),
}

/// A rule with an empty variable name (`=1`, or nothing at all); each face
/// words its own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmptyName;

impl EnvRule {
    /// Parses one rule: the variable name is everything before the first
    /// `=`, so a value may itself hold `=`.
    pub fn parse(text: &str) -> Result<Self, EmptyName> {
        let (name, value) = match text.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        if name.is_empty() {
            return Err(EmptyName);
        }
        Ok(match value {
            None => Self::Pass(name.to_string()),
            Some("") => Self::Unset(name.to_string()),
            Some(value) => Self::Set(name.to_string(), value.to_string()),
        })
    }
}

/// What `VAR` does when isobox's own environment has no `VAR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenAbsent {
    /// Remove it from the program's environment (isolate's `-E VAR`).
    Remove,
    /// Leave the program's environment as it is (the native `--env VAR`).
    Keep,
}

/// An environment as the executor takes it: `(name, value)` pairs.
pub type Environment = Vec<(String, String)>;

/// Sets `name` to `value`: in place when the variable is there (so the
/// order of a base environment is kept), appended otherwise.
pub fn set(environment: &mut Environment, name: &str, value: String) {
    match environment.iter_mut().find(|(known, _)| known == name) {
        Some(entry) => entry.1 = value,
        None => environment.push((name.to_string(), value)),
    }
}

/// Applies `rules` to `environment` in order. `lookup` reads isobox's own
/// environment (a parameter so that faces can be tested without touching
/// the real one); its error stops the application.
pub fn apply<E>(
    environment: &mut Environment,
    rules: &[EnvRule],
    absent: WhenAbsent,
    mut lookup: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<(), E> {
    for rule in rules {
        match rule {
            EnvRule::Set(name, value) => set(environment, name, value.clone()),
            EnvRule::Unset(name) => environment.retain(|(known, _)| known != name),
            EnvRule::Pass(name) => match (lookup(name)?, absent) {
                (Some(value), _) => set(environment, name, value),
                (None, WhenAbsent::Remove) => environment.retain(|(known, _)| known != name),
                (None, WhenAbsent::Keep) => {}
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        assert_eq!(
            EnvRule::parse("A=1"),
            Ok(EnvRule::Set("A".into(), "1".into()))
        );
        assert_eq!(
            EnvRule::parse("X=a=b"),
            Ok(EnvRule::Set("X".into(), "a=b".into()))
        );
        assert_eq!(EnvRule::parse("A"), Ok(EnvRule::Pass("A".into())));
        assert_eq!(EnvRule::parse("A="), Ok(EnvRule::Unset("A".into())));
        assert_eq!(EnvRule::parse("=1"), Err(EmptyName));
        assert_eq!(EnvRule::parse(""), Err(EmptyName));
    }

    #[test]
    fn an_absent_passed_variable_is_removed_or_kept() {
        let rules = [EnvRule::Pass("HOME".into())];
        let base = || vec![("HOME".to_string(), "/box".to_string())];
        let none = |_: &str| Ok::<_, ()>(None);
        let mut removed = base();
        apply(&mut removed, &rules, WhenAbsent::Remove, none).unwrap();
        assert!(removed.is_empty());
        let mut kept = base();
        apply(&mut kept, &rules, WhenAbsent::Keep, none).unwrap();
        assert_eq!(kept, base());
    }
}
