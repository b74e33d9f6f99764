//! `${VAR}` and `${VAR:-default}` substitution in config text, before TOML parsing.
//! `$${` writes a literal `${`. Substitution never spans lines, so line numbers stay true.

/// Substitutes variables; errors name the line and the variable.
pub fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<(usize, String)>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(r) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = r;
                continue;
            }
            if !after.starts_with("${") {
                out.push('$');
                rest = &after[1..];
                continue;
            }
            let Some(end) = after.find('}') else {
                errors.push((
                    lineno + 1,
                    "unclosed `${` (write `$${` for a literal `${`)".to_string(),
                ));
                out.push_str(after);
                rest = "";
                break;
            };
            let inner = &after[2..end];
            let (name, default) = match inner.find(":-") {
                Some(i) => (&inner[..i], Some(&inner[i + 2..])),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                errors.push((
                    lineno + 1,
                    format!("invalid environment variable name `{name}` in `${{{inner}}}`"),
                ));
            } else {
                match (lookup(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => errors.push((
                        lineno + 1,
                        format!("environment variable `{name}` is not set (use `${{{name}:-default}}` to give a default)"),
                    )),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_with_defaults_and_escapes() {
        let s = substitute(
            "a = \"${HOME}/x\"\nb = \"${NOPE:-d}\"\nc = \"$${HOME}\"\nd = \"${EMPTY:-e}\" $5\n",
            env,
        )
        .unwrap();
        assert_eq!(
            s,
            "a = \"/home/u/x\"\nb = \"d\"\nc = \"${HOME}\"\nd = \"e\" $5\n"
        );
    }

    #[test]
    fn missing_variables_name_the_line() {
        let e = substitute("a = 1\nb = \"${MISSING}\"\nc = \"${1BAD}\"\n", env).unwrap_err();
        assert_eq!(e[0].0, 2);
        assert!(e[0].1.contains("MISSING"));
        assert_eq!(e[1].0, 3);
    }
}
