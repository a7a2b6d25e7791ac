//! JSON as tlearn reads its own files (`meta.json`, `cuts.json`, `head.json`): a key given twice
//! in one object is refused, naming the key and where it is. serde_json keeps the last of
//! duplicate keys without a word (and a `Value` cannot tell), so a hand-edited file with two
//! `"classes"` or two `"layer"` would load as something its reader never sees written.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeOwned, Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Any JSON value whose objects have no duplicate keys.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(A::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

/// Refuse JSON text with a key given twice in one object (the error names the key, line and
/// column); anything else serde_json refuses is refused too.
pub fn check_unique_keys(text: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<UniqueKeys>(text).map(|_| ())
}

/// `serde_json::from_slice` that also refuses duplicate keys.
pub fn from_slice<T: DeserializeOwned>(text: &[u8]) -> Result<T, serde_json::Error> {
    check_unique_keys(text)?;
    serde_json::from_slice(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_key_is_named_at_any_depth_and_other_json_passes() {
        assert!(check_unique_keys(br#"{"a": [1, {"b": null, "c": "x"}], "d": -1.5e3}"#).is_ok());
        let e = check_unique_keys(b"{\"a\": 1,\n \"a\": 2}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("duplicate key \"a\"") && e.contains("line 2"),
            "{e}"
        );
        let e = check_unique_keys(br#"[{"x": {"k": 1, "k": 1}}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate key \"k\""), "{e}");
        // The same key in two objects is fine.
        assert!(check_unique_keys(br#"[{"k": 1}, {"k": 2}]"#).is_ok());
        assert!(check_unique_keys(b"{\"a\": ").is_err());
    }
}
