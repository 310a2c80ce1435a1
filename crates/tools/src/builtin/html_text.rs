//! A small HTML-to-text converter for `web_fetch`: drops scripts, styles and markup, turns
//! block elements into line breaks, decodes common entities and tidies whitespace.

/// Elements whose content is never text for a reader.
const SKIPPED: &[&str] = &["script", "style", "noscript", "template", "svg", "head", "iframe", "object"];

/// Elements that stand apart as paragraphs.
const PARAGRAPHS: &[&str] =
    &["article", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ol", "p", "pre", "section", "table", "ul"];

/// Elements that start a new line.
const BLOCKS: &[&str] = &[
    "address",
    "aside",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "tbody",
    "thead",
    "tr",
];

/// The readable text of an HTML document.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut in_pre = false;
    while let Some(start) = rest.find('<') {
        push_text(&mut out, &rest[..start], in_pre);
        rest = &rest[start..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let Some(end) = rest.find('>') else {
            // A lone '<' with no tag after it is text.
            push_text(&mut out, rest, in_pre);
            rest = "";
            break;
        };
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if name.is_empty() {
            continue;
        }
        if !closing && SKIPPED.contains(&name.as_str()) && !tag.ends_with('/') {
            rest = skip_element(rest, &name);
            continue;
        }
        if name == "pre" {
            in_pre = !closing;
        }
        if PARAGRAPHS.contains(&name.as_str()) {
            out.push_str("\n\n");
        } else if BLOCKS.contains(&name.as_str()) {
            out.push('\n');
            if name == "li" && !closing {
                out.push_str("- ");
            }
        } else if matches!(name.as_str(), "td" | "th") {
            out.push(' ');
        }
    }
    push_text(&mut out, rest, in_pre);
    tidy_whitespace(&out)
}

/// Appends a text run: line breaks in the source are only spacing, except inside `<pre>`.
fn push_text(out: &mut String, text: &str, in_pre: bool) {
    let decoded = decode_entities(text);
    if in_pre {
        out.push_str(&decoded);
    } else {
        out.extend(decoded.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }));
    }
}

/// The input after the closing tag of `name`, or nothing when it is never closed.
fn skip_element<'a>(html: &'a str, name: &str) -> &'a str {
    let mut from = 0;
    while let Some(at) = html[from..].find("</") {
        let start = from + at + 2;
        let candidate = html.as_bytes().get(start..start + name.len());
        if candidate.is_some_and(|c| c.eq_ignore_ascii_case(name.as_bytes())) {
            return html[start..].find('>').map_or("", |end| &html[start + end + 1..]);
        }
        from = start;
    }
    ""
}

/// Decodes named entities in common use and every numeric one.
pub(crate) fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let decoded = rest.bytes().skip(1).take(12).position(|b| b == b';').and_then(|end| {
            let entity = &rest[1..=end];
            decode_entity(entity).map(|c| (c, end + 2))
        });
        match decoded {
            Some((c, consumed)) => {
                out.push(c);
                rest = &rest[consumed..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(entity: &str) -> Option<char> {
    if let Some(number) = entity.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0');
    }
    Some(match entity {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "euro" => '€',
        "pound" => '£',
        "times" => '×',
        _ => return None,
    })
}

/// Collapses runs of spaces inside lines; two or more empty lines in a row become one blank
/// line (a paragraph break), a single empty line (two adjacent blocks) none.
fn tidy_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_lines = 0;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            blank_lines += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_lines > 1 { "\n\n" } else { "\n" });
        }
        out.push_str(&words.join(" "));
        blank_lines = 0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_scripts_and_styles_are_dropped() {
        let html = r#"<!DOCTYPE html><html><head><title>T</title><style>p { color: red }</style></head>
            <body><script type="text/javascript">alert("x < y")</script><!-- a comment -->
            <h1>Hello&nbsp;&amp; welcome</h1><p>First   <b>bold</b> line.</p>
            <ul><li>one</li><li>two &#8212; &#x2713;</li></ul><SCRIPT>more()</SCRIPT><p>5 &lt; 6 &unknown; & done</p>
            </body></html>"#;
        assert_eq!(
            html_to_text(html),
            "Hello & welcome\n\nFirst bold line.\n\n- one\n- two — ✓\n\n5 < 6 &unknown; & done"
        );
    }

    #[test]
    fn odd_input_does_not_panic() {
        for html in ["", "<", "a < b", "<script>never closed", "<!-- open", "&#xFFFFFFFF;", "&#0;", "é<p>ü</p>&"] {
            let _ = html_to_text(html);
        }
        assert_eq!(html_to_text("a < b"), "a < b");
        assert_eq!(html_to_text("<p>a\nb</p><pre>x\n  y</pre>"), "a b\n\nx\ny");
        assert_eq!(decode_entities("&#0;&#xD800;"), "&#0;&#xD800;");
    }
}
