//! Scope patterns: `*` matches any run of characters (including none), `?` exactly one;
//! everything else matches itself. `kb:*` matches `kb:product_docs`; `file:read:/workspace/*`
//! matches `file:read:/workspace/a/b.txt`.

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative wildcard matching with backtracking to the last `*`: linear in practice, no
    // recursion to blow the stack on hostile input.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether `resource` falls inside any of `scopes`.
pub fn in_scope(scopes: &[String], resource: &str) -> bool {
    scopes.iter().any(|scope| matches(scope, resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_the_seed_describes() {
        let cases = [
            ("kb:*", "kb:product_docs", true),
            ("db:analytics.*", "db:analytics.customers", true),
            ("db:analytics.*", "db:billing.invoices", false),
            ("file:read:*", "file:read:/workspace/a.txt", true),
            ("file:read:*", "file:write:/workspace/a.txt", false),
            ("file:*", "file:write:/x", true),
            ("file:read:/workspace/*", "file:read:/etc/passwd", false),
            ("web:*.example.com", "web:api.example.com", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("", "x", false),
            ("**a**b", "xxaxxbxx", false),
            ("**a**b*", "xxaxxbxx", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(matches(pattern, text), expected, "{pattern} vs {text}");
        }
    }

    #[test]
    fn hostile_patterns_finish() {
        let text = "a".repeat(5000);
        assert!(!matches(&format!("{}b", "*a".repeat(200)), &text));
    }
}
