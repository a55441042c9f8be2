//! JSON read only to refuse an object that names one key twice: serde_json keeps the
//! last of them, so a config that says `"lr": 0.1` and later `"lr": 0.001` would train
//! with one of the two without a word.

use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};

/// Checks that no object in the JSON `text` names a key twice; the error says which
/// key and where (serde_json's line and column).
pub(crate) fn check_unique_keys(text: &str) -> Result<(), String> {
    serde_json::from_str::<UniqueKeys>(text)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Any JSON value whose objects each name their keys once.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_str<E: Error>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_unit<E: Error>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<UniqueKeys, A::Error> {
        while items.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = entries.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(A::Error::custom(format!("`{key}` is given twice")));
            }
            entries.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_at_any_depth_is_named_and_other_json_passes() {
        let nested = r#"{"optimizer": {"name": "adam", "name": "sgd"}, "lr": 0.1}"#;
        let error = check_unique_keys(nested).expect_err("twice");
        assert!(
            error.contains("`name` is given twice") && error.contains("line 1"),
            "{error}"
        );
        assert!(check_unique_keys(r#"{"lr": 1, "lr": 2}"#).is_err());
        let fine = r#"{"a": [1, -2, 3.5, "x", null, true, {"a": 1}], "b": {"a": {}}}"#;
        assert_eq!(check_unique_keys(fine), Ok(()));
    }
}
