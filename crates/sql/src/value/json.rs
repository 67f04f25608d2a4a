//! json and jsonb. Both are held as text: json exactly as given (after
//! checking it parses), jsonb in PostgreSQL's normalized form (keys sorted
//! shorter-first then bytewise, the last of duplicate keys kept, `", "` and
//! `": "` separators), so equal jsonb values are equal strings. Operators
//! parse the text when they run.

use serde_json::{Map, Value as J};

use crate::error::{SqlError, SqlResult, SqlState};

fn invalid(kind: &str, input: &str, e: &serde_json::Error) -> SqlError {
    SqlError::new(
        SqlState::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {kind}"),
    )
    .with_detail(format!("{e} (input: {input})"))
}

/// Deepest nesting of arrays and objects a JSON value may have. PostgreSQL
/// parses 10,000 levels and refuses 100,000 with 54001 (its stack limit).
pub const MAX_JSON_DEPTH: usize = 20_000;

/// serde_json's own limit; deeper documents are parsed on a stack of
/// their own (see [`parse`]).
const SERDE_DEPTH: usize = 128;

/// Parses JSON text.
pub fn parse(kind: &str, text: &str) -> SqlResult<J> {
    let depth = nesting_depth(text);
    if depth > MAX_JSON_DEPTH {
        return Err(crate::depth::stack_depth_exceeded());
    }
    if depth < SERDE_DEPTH {
        return serde_json::from_str(text).map_err(|e| invalid(kind, text, &e));
    }
    // serde_json recurses once per level: give it a stack for the depth.
    stacker::grow(depth * 1024 + (1 << 20), || {
        let mut de = serde_json::Deserializer::from_str(text);
        de.disable_recursion_limit();
        serde::Deserialize::deserialize(&mut de)
            .and_then(|v: J| de.end().map(|()| v))
            .map_err(|e| invalid(kind, text, &e))
    })
}

/// The deepest nesting of `[` and `{` in JSON text (outside strings), as
/// an upper bound for malformed input.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Checks json input; the text is kept as given.
pub fn json_in(text: &str) -> SqlResult<String> {
    parse("json", text)?;
    Ok(text.to_string())
}

/// jsonb input: the normalized text.
pub fn jsonb_in(text: &str) -> SqlResult<String> {
    Ok(render(&parse("json", text)?))
}

/// PostgreSQL's jsonb output of a parsed value.
pub fn render(v: &J) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &J, out: &mut String) {
    // Depth is bounded by MAX_JSON_DEPTH; grow the stack rather than fail.
    stacker::maybe_grow(64 << 10, 4 << 20, || write_value(v, out))
}

fn write_value(v: &J, out: &mut String) {
    match v {
        J::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| {
                a.len()
                    .cmp(&b.len())
                    .then_with(|| a.as_bytes().cmp(b.as_bytes()))
            });
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&J::String((*k).clone()).to_string());
                out.push_str(": ");
                write(&map[*k], out);
            }
            out.push('}');
        }
        J::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        // Numbers as PostgreSQL's numeric prints them (1e2 is 100).
        J::Number(n) => {
            let text = n.to_string();
            match text
                .parse::<rust_decimal::Decimal>()
                .or_else(|_| rust_decimal::Decimal::from_scientific(&text))
            {
                Ok(d) => out.push_str(&d.to_string()),
                Err(_) => out.push_str(&text),
            }
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What `->` / `->>` select: an array position or an object key.
pub enum Step<'a> {
    Index(i64),
    Key(&'a str),
}

fn step<'v>(v: &'v J, s: &Step) -> Option<&'v J> {
    match (v, s) {
        (J::Array(items), Step::Index(i)) => {
            let i = if *i < 0 { items.len() as i64 + i } else { *i };
            usize::try_from(i).ok().and_then(|i| items.get(i))
        }
        (J::Object(map), Step::Key(k)) => map.get(*k),
        _ => None,
    }
}

/// `doc -> step` (as_text false) or `doc ->> step`; None is SQL NULL.
/// `jsonb` says how to print a selected json value.
pub fn get(doc: &str, path: &[Step], as_text: bool, jsonb: bool) -> SqlResult<Option<String>> {
    let v = parse("json", doc)?;
    let mut cur = &v;
    for s in path {
        match step(cur, s) {
            Some(next) => cur = next,
            None => return Ok(None),
        }
    }
    Ok(match (cur, as_text) {
        (J::Null, true) => None,
        (J::String(s), true) => Some(s.clone()),
        (other, _) if jsonb || as_text => Some(render(other)),
        (other, _) => Some(other.to_string()),
    })
}

/// jsonb `a @> b`: every part of b is in a.
pub fn contains(a: &str, b: &str) -> SqlResult<bool> {
    Ok(contains_value(
        &parse("jsonb", a)?,
        &parse("jsonb", b)?,
        true,
    ))
}

fn contains_value(a: &J, b: &J, top: bool) -> bool {
    match (a, b) {
        (J::Object(a), J::Object(b)) => b
            .iter()
            .all(|(k, bv)| a.get(k).is_some_and(|av| contains_value(av, bv, false))),
        (J::Array(a), J::Array(b)) => b.iter().all(|bv| {
            a.iter().any(|av| match bv {
                // Scalars in an array match scalars; containers recurse.
                J::Array(_) | J::Object(_) => contains_value(av, bv, false),
                _ => av == bv || (numbers_equal(av, bv)),
            })
        }),
        // A top-level array contains a scalar it holds.
        (J::Array(a), scalar) if top && !matches!(scalar, J::Object(_)) => {
            a.iter().any(|av| av == scalar || numbers_equal(av, scalar))
        }
        (a, b) => a == b || numbers_equal(a, b),
    }
}

fn numbers_equal(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        _ => false,
    }
}

/// jsonb `doc ? key`: a top-level key, or a string element of an array.
pub fn has_key(doc: &str, key: &str) -> SqlResult<bool> {
    Ok(match parse("jsonb", doc)? {
        J::Object(map) => map.contains_key(key),
        J::Array(items) => items.iter().any(|i| i.as_str() == Some(key)),
        J::String(s) => s == key,
        _ => false,
    })
}

/// json_typeof / jsonb_typeof.
pub fn type_of(doc: &str) -> SqlResult<&'static str> {
    Ok(match parse("json", doc)? {
        J::Null => "null",
        J::Bool(_) => "boolean",
        J::Number(_) => "number",
        J::String(_) => "string",
        J::Array(_) => "array",
        J::Object(_) => "object",
    })
}

/// json_array_length / jsonb_array_length.
pub fn array_length(doc: &str) -> SqlResult<i64> {
    match parse("json", doc)? {
        J::Array(items) => Ok(items.len() as i64),
        _ => Err(SqlError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "cannot get array length of a non-array",
        )),
    }
}

/// jsonb_build_object(k1, v1, ...) from already-rendered JSON values.
pub fn build_object(pairs: Vec<(String, J)>) -> String {
    let mut map = Map::new();
    for (k, v) in pairs {
        map.insert(k, v);
    }
    render(&J::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonb_is_normalized_like_postgres() {
        assert_eq!(
            jsonb_in(r#"{"bb":1,"a":[1,2,{"z":null,"y":true}],"bb":2,"ccc":"x"}"#).unwrap(),
            r#"{"a": [1, 2, {"y": true, "z": null}], "bb": 2, "ccc": "x"}"#
        );
        assert_eq!(jsonb_in("1.50").unwrap(), "1.50");
        assert_eq!(
            jsonb_in("[1e2, -0.5E1, 1.0, 2.50e1]").unwrap(),
            "[100, -5, 1.0, 25.0]"
        );
        assert!(jsonb_in("{nope}").is_err());
        assert_eq!(json_in(r#"{"b":1, "a":2}"#).unwrap(), r#"{"b":1, "a":2}"#);
    }

    #[test]
    fn operators() {
        let doc = r#"{"a": {"b": [10, "x", null]}, "n": null}"#;
        let get1 = |path: &[Step], text| get(doc, path, text, true).unwrap();
        assert_eq!(
            get1(&[Step::Key("a"), Step::Key("b"), Step::Index(1)], true).as_deref(),
            Some("x")
        );
        assert_eq!(
            get1(&[Step::Key("a"), Step::Key("b"), Step::Index(-3)], false).as_deref(),
            Some("10")
        );
        assert_eq!(get1(&[Step::Key("n")], true), None);
        assert_eq!(get1(&[Step::Key("n")], false).as_deref(), Some("null"));
        assert_eq!(get1(&[Step::Key("zz")], false), None);
        assert!(contains(doc, r#"{"a": {"b": [10]}}"#).unwrap());
        assert!(!contains(doc, r#"{"a": {"b": [11]}}"#).unwrap());
        assert!(contains("[1, 2, 3]", "2").unwrap());
        assert!(has_key(doc, "n").unwrap());
        assert!(!has_key(doc, "b").unwrap());
    }
}
