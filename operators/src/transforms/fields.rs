//! `type = "fields"`: adds, sets, removes and renames fields. Changes are recorded once per
//! batch in the overlay (no per-event work here); sinks apply them when they write.
//!
//! Order within one transform: `rename`, then `remove`, then `set`, then `add`.
//! `add` writes a field only where it is absent; `set` always writes it.

use indexmap_lite::OrderedMap;
use serde::Deserialize;
use sluice_engine::batch::{Batch, OverlayOp};
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, Transform, PORT_MAIN};
use sluice_engine::Value;

/// Options of the `fields` transform.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FieldsConfig {
    /// Fields to write where absent: `add = { env = "prod", "app.tier" = "web" }`.
    #[serde(default)]
    pub add: OrderedMap<Value>,
    /// Fields to write, replacing what is there.
    #[serde(default)]
    pub set: OrderedMap<Value>,
    /// Fields to delete.
    #[serde(default)]
    pub remove: Vec<FieldPath>,
    /// Fields to move: `rename = { msg = "message" }`.
    #[serde(default)]
    pub rename: OrderedMap<FieldPath>,
}

impl FieldsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.add.is_empty()
            && self.set.is_empty()
            && self.remove.is_empty()
            && self.rename.is_empty()
        {
            return Err(
                "nothing to do: give at least one of `add`, `set`, `remove`, `rename`".into(),
            );
        }
        for k in self
            .add
            .keys()
            .chain(self.set.keys())
            .chain(self.rename.keys())
        {
            FieldPath::parse(k).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn build(&self) -> Result<Fields, String> {
        self.validate()?;
        let mut ops = Vec::new();
        for (from, to) in self.rename.iter() {
            ops.push(OverlayOp::Rename {
                from: FieldPath::parse(from).map_err(|e| e.to_string())?,
                to: to.clone(),
            });
        }
        for p in &self.remove {
            ops.push(OverlayOp::Remove { path: p.clone() });
        }
        for (k, v) in self.set.iter() {
            ops.push(OverlayOp::Set {
                path: FieldPath::parse(k).map_err(|e| e.to_string())?,
                value: v.clone(),
                if_absent: false,
            });
        }
        for (k, v) in self.add.iter() {
            ops.push(OverlayOp::Set {
                path: FieldPath::parse(k).map_err(|e| e.to_string())?,
                value: v.clone(),
                if_absent: true,
            });
        }
        Ok(Fields { ops })
    }
}

pub struct Fields {
    ops: Vec<OverlayOp>,
}

impl Transform for Fields {
    fn process(&mut self, mut batch: Batch, out: &mut Emitter) {
        batch.overlay.ops.extend(self.ops.iter().cloned());
        out.emit(PORT_MAIN, batch);
    }
}

/// A tiny insertion-ordered string map for config tables (keeps the user's order).
pub mod indexmap_lite {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use std::fmt;

    #[derive(Debug, Clone, PartialEq)]
    pub struct OrderedMap<V>(pub Vec<(String, V)>);

    impl<V> Default for OrderedMap<V> {
        fn default() -> Self {
            OrderedMap(Vec::new())
        }
    }

    impl<V> OrderedMap<V> {
        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
        pub fn keys(&self) -> impl Iterator<Item = &String> {
            self.0.iter().map(|(k, _)| k)
        }
        pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
            self.0.iter().map(|(k, v)| (k, v))
        }
    }

    impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V2<V>(std::marker::PhantomData<V>);
            impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
                type Value = OrderedMap<V>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a table of field names")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<String, V>()? {
                        out.push((k, v));
                    }
                    Ok(OrderedMap(out))
                }
            }
            d.deserialize_map(V2(std::marker::PhantomData))
        }
    }
}
