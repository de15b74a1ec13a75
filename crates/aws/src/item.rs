//! DynamoDB items: attribute constructors and typed getters.
//!
//! Decoding an item never panics: an attribute that is missing or of the
//! wrong type is an [`ItemError`] naming the item (by its key) and the
//! attribute, which each store turns into its own "corrupt item" error.
//!
//! ```
//! use tincan_aws::item::{self, Attributes};
//!
//! let mut stored = item::key("pk", "conn-1");
//! stored.insert("connectedAt".into(), item::n(1_700_000_000_123));
//! let attrs = Attributes::keyed(&stored, "pk")?;
//! assert_eq!(attrs.number("connectedAt")?, 1_700_000_000_123);
//! let err = attrs.string("userId").unwrap_err();
//! assert_eq!((err.key.as_str(), err.attribute.as_str()), ("conn-1", "userId"));
//! # Ok::<(), tincan_aws::ItemError>(())
//! ```

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// An item, or a map attribute inside one.
pub type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A number attribute.
pub fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The key of an item whose partition key attribute `attribute` is the
/// string `value` (also the start of a whole item).
pub fn key(attribute: &str, value: &str) -> Item {
    HashMap::from([(attribute.to_owned(), s(value))])
}

/// An attribute that is missing or of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item {key}: {}", self.reason())]
pub struct ItemError {
    /// The item's key (`?` when the key itself is the attribute at fault).
    pub key: String,
    /// The attribute.
    pub attribute: String,
}

impl ItemError {
    /// What is wrong, without the item's key.
    pub fn reason(&self) -> String {
        format!("attribute {} missing or of the wrong type", self.attribute)
    }
}

/// Typed reads of an item's attributes; failures name the item's key.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    item: &'a Item,
    key: &'a str,
}

impl<'a> Attributes<'a> {
    /// The attributes of `item`, whose (string) partition key attribute is
    /// `pk`. Without one, the item is corrupt (its key shows as `?`).
    pub fn keyed(item: &'a Item, pk: &str) -> Result<Self, ItemError> {
        let key = Self::within(item, "?").string(pk)?;
        Ok(Self { item, key })
    }

    /// The attributes of `item` (a map inside the item keyed `key`), whose
    /// failures name that item.
    pub fn within(item: &'a Item, key: &'a str) -> Self {
        Self { item, key }
    }

    /// The key of the item read.
    pub fn key(&self) -> &'a str {
        self.key
    }

    /// Whether the attribute is there at all.
    pub fn has(&self, name: &str) -> bool {
        self.item.contains_key(name)
    }

    /// The error for attribute `name` of this item.
    pub fn corrupt(&self, name: &str) -> ItemError {
        ItemError {
            key: self.key.to_owned(),
            attribute: name.to_owned(),
        }
    }

    /// A string attribute.
    pub fn string(&self, name: &str) -> Result<&'a str, ItemError> {
        self.opt_string(name)?.ok_or_else(|| self.corrupt(name))
    }

    /// A string attribute that may be absent (items written before it
    /// existed), but if present is a string.
    pub fn opt_string(&self, name: &str) -> Result<Option<&'a str>, ItemError> {
        match self.item.get(name) {
            None => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value)),
            Some(_) => Err(self.corrupt(name)),
        }
    }

    /// A whole number attribute (`u64`).
    pub fn number(&self, name: &str) -> Result<u64, ItemError> {
        self.opt_number(name)?.ok_or_else(|| self.corrupt(name))
    }

    /// A whole number attribute that may be absent, but if present is one.
    pub fn opt_number(&self, name: &str) -> Result<Option<u64>, ItemError> {
        match self.item.get(name) {
            None => Ok(None),
            Some(AttributeValue::N(value)) => {
                value.parse().map(Some).map_err(|_| self.corrupt(name))
            }
            Some(_) => Err(self.corrupt(name)),
        }
    }

    /// A finite decimal number attribute.
    pub fn finite(&self, name: &str) -> Result<f64, ItemError> {
        match self.item.get(name) {
            Some(AttributeValue::N(value)) => value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| self.corrupt(name)),
            _ => Err(self.corrupt(name)),
        }
    }

    /// A boolean attribute.
    pub fn boolean(&self, name: &str) -> Result<bool, ItemError> {
        match self.item.get(name) {
            Some(AttributeValue::Bool(value)) => Ok(*value),
            _ => Err(self.corrupt(name)),
        }
    }

    /// A flag written only when set: `true` if the attribute is the
    /// boolean `true`, `false` otherwise (absent included).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.item.get(name), Some(AttributeValue::Bool(true)))
    }

    /// A map attribute.
    pub fn map(&self, name: &str) -> Result<&'a Item, ItemError> {
        match self.item.get(name) {
            Some(AttributeValue::M(map)) => Ok(map),
            _ => Err(self.corrupt(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        let mut item = key("pk", "k1");
        item.insert("name".into(), s("Zoë"));
        item.insert("count".into(), n(7));
        item.insert("cpu".into(), AttributeValue::N("12.25".into()));
        item.insert("on".into(), AttributeValue::Bool(true));
        item.insert("off".into(), AttributeValue::Bool(false));
        item.insert("m".into(), AttributeValue::M(key("x", "y")));
        item
    }

    #[test]
    fn present_attributes_read_as_their_types() {
        let item = item();
        let a = Attributes::keyed(&item, "pk").unwrap();
        assert_eq!(a.key(), "k1");
        assert_eq!(a.string("name"), Ok("Zoë"));
        assert_eq!(a.opt_string("name"), Ok(Some("Zoë")));
        assert_eq!(a.number("count"), Ok(7));
        assert_eq!(a.opt_number("count"), Ok(Some(7)));
        assert_eq!(a.finite("cpu"), Ok(12.25));
        assert_eq!(a.boolean("off"), Ok(false));
        assert!(a.flag("on") && !a.flag("off") && !a.flag("absent"));
        assert_eq!(
            Attributes::within(a.map("m").unwrap(), a.key()).string("x"),
            Ok("y")
        );
    }

    #[test]
    fn absent_optional_attributes_are_none_but_absent_required_ones_are_errors() {
        let item = item();
        let a = Attributes::keyed(&item, "pk").unwrap();
        assert_eq!(a.opt_string("absent"), Ok(None));
        assert_eq!(a.opt_number("absent"), Ok(None));
        for err in [
            a.string("absent").unwrap_err(),
            a.number("absent").unwrap_err(),
            a.boolean("absent").unwrap_err(),
            a.map("absent").unwrap_err(),
        ] {
            assert_eq!(err, a.corrupt("absent"));
        }
    }

    #[test]
    fn wrong_types_are_errors_naming_item_and_attribute_never_panics() {
        let mut item = item();
        item.insert("nan".into(), AttributeValue::N("NaN".into()));
        item.insert("neg".into(), AttributeValue::N("-1".into()));
        let a = Attributes::keyed(&item, "pk").unwrap();
        assert!(a.opt_string("count").is_err());
        assert!(a.opt_number("name").is_err());
        assert!(a.number("neg").is_err());
        assert!(a.number("cpu").is_err(), "not a whole number");
        assert!(a.finite("nan").is_err());
        assert!(a.boolean("name").is_err());
        let err = a.map("name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "item k1: attribute name missing or of the wrong type"
        );
        item.remove("pk");
        assert_eq!(
            Attributes::keyed(&item, "pk").unwrap_err(),
            ItemError {
                key: "?".into(),
                attribute: "pk".into()
            }
        );
    }
}
