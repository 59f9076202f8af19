//! Making a shaped event fit Wazuh: at most its number of fields (the largest objects kept
//! as JSON text) and at most the line cap (the largest fields cut, with a marker).

use super::*;

/// Wazuh counts every non-object value as one field (arrays included, as one text).
pub(super) fn leaves(fields: &Object<'_>) -> usize {
    fields
        .iter()
        .map(|(_, v)| match v {
            Value::Object(inner) => leaves(inner),
            _ => 1,
        })
        .sum()
}

/// Turn the object with the most leaves into one JSON-text field until the event fits.
pub(super) fn collapse_until(fields: &mut Object<'_>, max_leaves: usize, notes: &mut Notes) {
    while leaves(fields) > max_leaves {
        let Some(path) = largest_object(fields) else {
            return;
        };
        let Some(slot) = find_mut(fields, &path) else {
            return;
        };
        let mut text = Vec::new();
        slot.write_compact(&mut text);
        *slot = Value::String(Cow::Owned(String::from_utf8_lossy(&text).into_owned()));
        notes.collapsed.push(path.join("."));
    }
}

/// Collapsing objects cannot help when the top level itself has too many fields: the fields
/// beyond the limit are kept together as the JSON text of one field, rather than left for Wazuh
/// to drop. The fields rules key on stay where they are, whatever comes before them.
pub(super) fn collapse_top_level_overflow(
    fields: &mut Object<'_>,
    max_leaves: usize,
    notes: &mut Notes,
) {
    if leaves(fields) <= max_leaves {
        return;
    }
    let count = |value: &Value<'_>| match value {
        Value::Object(inner) => leaves(inner),
        _ => 1,
    };
    let essential =
        |key: &str| ["type", "attackData", "httpMessage", "geo", DECODE_ERRORS].contains(&key);
    // One leaf is for the overflow field itself.
    let mut room = max_leaves.saturating_sub(1).saturating_sub(
        fields
            .iter()
            .filter(|(k, _)| essential(k))
            .map(|(_, v)| count(v))
            .sum(),
    );
    let (mut kept, mut moved) = (Vec::with_capacity(max_leaves), Vec::new());
    for (key, value) in fields.drain(..) {
        if essential(&key) {
            kept.push((key, value));
        } else if count(&value) <= room && moved.is_empty() {
            room -= count(&value);
            kept.push((key, value));
        } else {
            moved.push((key, value));
        }
    }
    *fields = kept;
    let overflow = Value::Object(moved);
    let mut text = Vec::new();
    overflow.write_compact(&mut text);
    let mut name = OVERFLOW_FIELDS.to_string();
    let mut n = 2;
    while fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
        name = format!("{OVERFLOW_FIELDS}_{n}");
        n += 1;
    }
    notes.collapsed.push(name.clone());
    fields.push((
        Cow::Owned(name),
        Value::String(Cow::Owned(String::from_utf8_lossy(&text).into_owned())),
    ));
}

/// The path of the object holding the most leaves: collapsing the biggest converges fastest.
pub(super) fn largest_object(fields: &Object<'_>) -> Option<Vec<String>> {
    let mut best: Option<(usize, Vec<String>)> = None;
    fn visit(fields: &Object<'_>, path: &mut Vec<String>, best: &mut Option<(usize, Vec<String>)>) {
        for (key, value) in fields {
            if let Value::Object(inner) = value {
                path.push(key.to_string());
                let count = leaves(inner);
                if count > 1 && best.as_ref().is_none_or(|(c, _)| count > *c) {
                    *best = Some((count, path.clone()));
                }
                visit(inner, path, best);
                path.pop();
            }
        }
    }
    visit(fields, &mut Vec::new(), &mut best);
    best.map(|(_, path)| path)
}

pub(super) fn find_mut<'v, 'a>(
    fields: &'v mut Object<'a>,
    path: &[String],
) -> Option<&'v mut Value<'a>> {
    let (first, rest) = path.split_first()?;
    let value = fields
        .iter_mut()
        .find(|(k, _)| k == first.as_str())
        .map(|(_, v)| v)?;
    if rest.is_empty() {
        return Some(value);
    }
    match value {
        Value::Object(inner) => find_mut(inner, rest),
        _ => None,
    }
}

/// Serialised size of each leaf, with its path.
pub(super) fn leaf_sizes(
    fields: &Object<'_>,
    path: &mut Vec<String>,
    sizes: &mut Vec<(usize, Vec<String>)>,
) {
    for (key, value) in fields {
        path.push(key.to_string());
        match value {
            Value::Object(inner) => leaf_sizes(inner, path, sizes),
            leaf => {
                let mut text = Vec::new();
                leaf.write_compact(&mut text);
                sizes.push((text.len(), path.clone()));
            }
        }
        path.pop();
    }
}

/// Shrink the largest leaf by `excess` bytes (keeping at least its start); false when nothing
/// can be cut any more.
pub(super) fn cut_largest(fields: &mut Object<'_>, excess: usize, notes: &mut Notes) -> bool {
    let mut sizes = Vec::new();
    leaf_sizes(fields, &mut Vec::new(), &mut sizes);
    let Some((size, path)) = sizes.into_iter().max_by_key(|(size, _)| *size) else {
        return false;
    };
    if size <= MIN_KEPT * 2 {
        return false;
    }
    let target = size.saturating_sub(excess).max(MIN_KEPT);
    let Some(slot) = find_mut(fields, &path) else {
        return false;
    };
    match slot {
        Value::String(text) => *text = Cow::Owned(cut_string(text, target)),
        Value::Array(items) => cut_array(items, target),
        _ => return false,
    }
    let name = path.join(".");
    if !notes.cut.contains(&name) {
        notes.cut.push(name);
    }
    true
}

/// The start of `text` whose escaped form fits `budget` bytes, with a marker saying how much
/// was cut.
pub(super) fn cut_string(text: &str, budget: usize) -> String {
    let marker_room = 40;
    let keep = budget.saturating_sub(marker_room);
    let mut kept = 0;
    let mut end = 0;
    for (index, c) in text.char_indices() {
        let width = escaped_width(c);
        if kept + width > keep {
            break;
        }
        kept += width;
        end = index + c.len_utf8();
    }
    format!("{}…[cut {} bytes]", &text[..end], text.len() - end)
}

pub(super) fn escaped_width(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Keep the leading elements that fit `budget`, cutting the one that crosses it, and add a
/// marker element saying how many were cut.
pub(super) fn cut_array(items: &mut Vec<Value<'_>>, budget: usize) {
    let total = items.len();
    let mut used = 2;
    let mut kept = 0;
    for item in items.iter_mut() {
        let text = item.as_str().unwrap_or_default().to_string();
        let width: usize = text.chars().map(escaped_width).sum::<usize>() + 3;
        if used + width > budget {
            let room = budget.saturating_sub(used);
            if room > MIN_KEPT {
                *item = Value::String(Cow::Owned(cut_string(&text, room)));
                kept += 1;
            }
            break;
        }
        used += width;
        kept += 1;
    }
    items.truncate(kept);
    items.push(Value::String(Cow::Owned(format!(
        "…[cut {} of {total} items]",
        total - kept.min(total)
    ))));
}
