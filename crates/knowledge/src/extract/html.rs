//! HTML to readable text over `scraper` (html5ever, so malformed pages parse as browsers parse
//! them): scripts, styles and other non-text elements are dropped, block elements end lines,
//! whitespace collapses outside `<pre>`. The title is `<title>`, else the first `<h1>`. The
//! walk is iterative, so deeply nested markup cannot exhaust the stack.

use ego_tree::iter::Edge;
use scraper::{Html, Node};

/// Elements whose content is never text for a reader.
const SKIPPED: &[&str] =
    &["script", "style", "noscript", "template", "svg", "math", "head", "iframe", "object", "canvas"];

/// Elements that end a line (and start one).
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "td",
    "th",
    "tr",
    "ul",
];

/// The text and title of a whole document.
pub(super) fn extract(source: &str) -> (String, Option<String>) {
    let document = Html::parse_document(source);
    let text = text_of(&document);
    let title = first_text(&document, "title").or_else(|| first_text(&document, "h1"));
    (text, title)
}

/// The text of an HTML fragment (e.g. HTML embedded in Markdown).
pub(super) fn extract_fragment(source: &str) -> (String, Option<String>) {
    (text_of(&Html::parse_fragment(source)), None)
}

fn text_of(document: &Html) -> String {
    let mut out = String::new();
    // Depth inside skipped elements, and inside `<pre>`.
    let (mut skipped, mut pre) = (0usize, 0usize);
    for edge in document.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(element) => {
                    let name = element.name();
                    if SKIPPED.contains(&name) {
                        skipped += 1;
                    } else if skipped == 0 && BLOCKS.contains(&name) {
                        new_line(&mut out);
                    }
                    if name == "pre" {
                        pre += 1;
                    }
                }
                Node::Text(text) if skipped == 0 => push_text(&mut out, text, pre > 0),
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(element) = node.value() {
                    let name = element.name();
                    if SKIPPED.contains(&name) {
                        skipped = skipped.saturating_sub(1);
                    } else if skipped == 0 && BLOCKS.contains(&name) {
                        new_line(&mut out);
                    }
                    if name == "pre" {
                        pre = pre.saturating_sub(1);
                    }
                }
            }
        }
    }
    out
}

fn push_text(out: &mut String, text: &str, preformatted: bool) {
    if preformatted {
        out.push_str(text);
        return;
    }
    let starts_with_space = text.starts_with(char::is_whitespace);
    let ends_with_space = text.ends_with(char::is_whitespace);
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        if starts_with_space && !out.is_empty() && !out.ends_with(char::is_whitespace) {
            out.push(' ');
        }
        return;
    }
    if starts_with_space && !out.is_empty() && !out.ends_with(char::is_whitespace) {
        out.push(' ');
    }
    out.push_str(&words.join(" "));
    if ends_with_space {
        out.push(' ');
    }
}

fn new_line(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// The whitespace-collapsed text of the first element named `name`, if it has any.
fn first_text(document: &Html, name: &str) -> Option<String> {
    let element =
        document.tree.root().descendants().find(|n| n.value().as_element().is_some_and(|e| e.name() == name))?;
    let text: String =
        element.descendants().filter_map(|n| n.value().as_text().map(|t| t.to_string())).collect::<Vec<_>>().join(" ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use crate::extract::{Format, extract};

    #[test]
    fn text_without_scripts_styles_or_tags_and_the_title_kept() {
        let page = r#"<!DOCTYPE html><html><head><title>  Nexus &amp; the   Ledger </title>
            <style>body { color: red }</style><script>var secret = "x";</script></head>
            <body><nav>Home</nav><h1>Ledger</h1><p>Every action is <b>sealed</b>.<br>Proofs are
            <a href="/p">public</a>.</p><!-- hidden comment --><ul><li>one</li><li>two</li></ul>
            <pre>  keep   spacing</pre><noscript>enable js</noscript><p>caf&eacute; &lt;ok&gt;</p></body></html>"#;
        let got = extract("page.html", None, page.as_bytes()).expect("html");
        assert_eq!(got.format, Format::Html);
        assert_eq!(got.title.as_deref(), Some("Nexus & the Ledger"));
        assert_eq!(
            got.text,
            "Home\nLedger\nEvery action is sealed.\nProofs are public.\none\ntwo\n  keep   spacing\ncafé <ok>"
        );
        for hidden in ["color", "secret", "comment", "enable js"] {
            assert!(!got.text.contains(hidden), "{hidden} leaked: {}", got.text);
        }
    }

    #[test]
    fn broken_and_deeply_nested_markup_is_read_without_trouble() {
        let broken = "<html><body><p>unclosed <b>bold <i>text<p>next</table></body>";
        assert_eq!(extract("b.html", None, broken.as_bytes()).expect("html").text, "unclosed bold text\nnext");
        let deep = format!("<html><body>{}deep{}</body></html>", "<span>".repeat(50_000), "</span>".repeat(50_000));
        let got = extract("deep.html", None, deep.as_bytes()).expect("html");
        assert_eq!(got.text, "deep");
        let no_title = "<html><body><h1>Heading <em>one</em></h1><p>x</p></body></html>";
        assert_eq!(extract("h.html", None, no_title.as_bytes()).expect("html").title.as_deref(), Some("Heading one"));
    }
}
