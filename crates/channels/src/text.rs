//! Answers as chat platforms take them: Markdown rendered to Telegram's HTML subset (or kept
//! as plain text), escaping that never lets the platform refuse a message, and splitting into
//! messages under a platform's limit, in order, on paragraph, line, sentence or word
//! boundaries — never an empty one.
//!
//! Splitting happens on the Markdown source, block by block, and each message is rendered on
//! its own, so every message's tags are balanced and its *rendered* length is what is
//! measured (rendering can make text longer: `&` becomes `&amp;`).

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Telegram's longest message, in UTF-16 code units after entity parsing.
pub const TELEGRAM_LIMIT: usize = 4096;
/// Discord's longest message content, in characters.
pub const DISCORD_LIMIT: usize = 2000;

/// How a platform counts a message's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// UTF-16 code units (Telegram).
    Utf16,
    /// Unicode scalar values (Discord).
    Chars,
}

impl Measure {
    pub fn len(self, text: &str) -> usize {
        match self {
            Measure::Utf16 => text.encode_utf16().count(),
            Measure::Chars => text.chars().count(),
        }
    }
}

/// `<`, `>` and `&` escaped, as Telegram's HTML parse mode requires.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Every character MarkdownV2 reserves escaped with `\`, so the text shows as written.
pub fn escape_markdown_v2(text: &str) -> String {
    const RESERVED: &str = "_*[]()~`>#+-=|{}.!\\";
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        if RESERVED.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Markdown as Telegram's HTML subset (`b`, `i`, `s`, `code`, `pre`, `a`, `blockquote`):
/// headings become bold lines, list items bullets, everything else escaped text. Raw HTML in
/// the source is shown as text, never passed through.
pub fn telegram_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + 16);
    let mut lists: Vec<Option<u64>> = Vec::new();
    let mut link_open = false;
    let parser = Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH);
    for event in parser {
        match event {
            Event::Start(tag) => match tag {
                Tag::Paragraph => {}
                Tag::Heading { .. } => out.push_str("<b>"),
                Tag::BlockQuote(_) => out.push_str("<blockquote>"),
                Tag::CodeBlock(kind) => match kind {
                    CodeBlockKind::Fenced(lang)
                        if !lang.trim().is_empty()
                            && lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '+' || c == '_') =>
                    {
                        out.push_str(&format!("<pre><code class=\"language-{lang}\">"));
                    }
                    _ => out.push_str("<pre><code>"),
                },
                Tag::List(start) => lists.push(start),
                Tag::Item => {
                    let depth = lists.len().saturating_sub(1);
                    out.push_str(&"  ".repeat(depth));
                    match lists.last_mut() {
                        Some(Some(n)) => {
                            out.push_str(&format!("{n}. "));
                            *n += 1;
                        }
                        _ => out.push_str("• "),
                    }
                }
                Tag::Emphasis => out.push_str("<i>"),
                Tag::Strong => out.push_str("<b>"),
                Tag::Strikethrough => out.push_str("<s>"),
                Tag::Link { dest_url, .. } => {
                    let safe = dest_url.starts_with("http://")
                        || dest_url.starts_with("https://")
                        || dest_url.starts_with("tg://");
                    if safe {
                        out.push_str(&format!("<a href=\"{}\">", escape_html(&dest_url)));
                        link_open = true;
                    }
                }
                _ => {}
            },
            Event::End(end) => match end {
                TagEnd::Paragraph => out.push_str("\n\n"),
                TagEnd::Heading(level) => {
                    out.push_str("</b>");
                    out.push_str(if level == HeadingLevel::H1 { "\n\n" } else { "\n" });
                }
                TagEnd::BlockQuote(_) => {
                    trim_end_newlines(&mut out);
                    out.push_str("</blockquote>\n\n");
                }
                TagEnd::CodeBlock => {
                    trim_end_newlines(&mut out);
                    out.push_str("</code></pre>\n\n");
                }
                TagEnd::List(_) => {
                    lists.pop();
                    if lists.is_empty() {
                        out.push('\n');
                    }
                }
                TagEnd::Item => {
                    trim_end_newlines(&mut out);
                    out.push('\n');
                }
                TagEnd::Emphasis => out.push_str("</i>"),
                TagEnd::Strong => out.push_str("</b>"),
                TagEnd::Strikethrough => out.push_str("</s>"),
                TagEnd::Link if link_open => {
                    out.push_str("</a>");
                    link_open = false;
                }
                _ => {}
            },
            Event::Text(text) => out.push_str(&escape_html(&text)),
            Event::Code(code) => {
                out.push_str("<code>");
                out.push_str(&escape_html(&code));
                out.push_str("</code>");
            }
            Event::Html(html) | Event::InlineHtml(html) => out.push_str(&escape_html(&html)),
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            Event::Rule => out.push_str("──────────\n\n"),
            Event::TaskListMarker(done) => out.push_str(if done { "☑ " } else { "☐ " }),
            _ => {}
        }
    }
    trim_end_newlines(&mut out);
    out
}

fn trim_end_newlines(out: &mut String) {
    while out.ends_with('\n') {
        out.pop();
    }
}

/// A piece of a message: Markdown to render, or text already in the platform's form (a
/// footer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Markdown(String),
    Ready(String),
}

/// One message to send: `text` in the platform's format and `plain`, the same words as plain
/// text (sent instead if the platform refuses the formatting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub text: String,
    pub plain: String,
}

/// Splits `pieces` into messages of at most `limit` (measured by `measure` after `render`),
/// in order. Blocks (paragraphs, fenced code) are packed whole while they fit; a block too long
/// on its own is cut on lines, then sentences, then words, then characters (a code block's
/// pieces each keep their fence). Never returns an empty message: empty input is `[]`.
pub fn split(pieces: &[Piece], limit: usize, measure: Measure, render: fn(&str) -> String) -> Vec<Outgoing> {
    // Each unit is (rendered, plain): the smallest parts that are never separated.
    let mut units: Vec<(String, String)> = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Ready(text) => {
                if !text.trim().is_empty() {
                    units.push((text.clone(), strip_tags(text)));
                }
            }
            Piece::Markdown(markdown) => {
                for block in blocks(markdown) {
                    let rendered = render(&block);
                    if rendered.trim().is_empty() {
                        continue;
                    }
                    if measure.len(&rendered) <= limit {
                        units.push((rendered, block));
                    } else {
                        for part in cut_block(&block, limit, measure, render) {
                            let rendered = render(&part);
                            if !rendered.trim().is_empty() {
                                units.push((rendered, part));
                            }
                        }
                    }
                }
            }
        }
    }
    let mut out: Vec<Outgoing> = Vec::new();
    let mut text = String::new();
    let mut plain = String::new();
    for (rendered, source) in units {
        let joined = if text.is_empty() { rendered.clone() } else { format!("{text}\n\n{rendered}") };
        if measure.len(&joined) <= limit {
            text = joined;
            plain = if plain.is_empty() { source } else { format!("{plain}\n\n{source}") };
            continue;
        }
        if !text.is_empty() {
            out.push(Outgoing { text: std::mem::take(&mut text), plain: std::mem::take(&mut plain) });
        }
        // A unit longer than the limit even alone (rendering grew it past every cut): small
        // pieces of its source, each rendered on its own.
        if measure.len(&rendered) > limit {
            for part in cut_text(&source, limit / 8, measure) {
                out.push(Outgoing { text: render(&part), plain: part });
            }
        } else {
            text = rendered;
            plain = source;
        }
    }
    if !text.trim().is_empty() {
        out.push(Outgoing { text, plain });
    }
    // The plain forms are sent only if formatting is refused; keep them within the limit too.
    out.into_iter()
        .flat_map(|o| {
            if measure.len(&o.plain) <= limit {
                vec![o]
            } else {
                let mut parts = cut_text(&o.plain, limit, measure).into_iter();
                let first = parts.next().unwrap_or_default();
                let mut v = vec![Outgoing { text: o.text, plain: first }];
                v.extend(parts.map(|p| Outgoing { text: escape_html(&p), plain: p }));
                v
            }
        })
        .filter(|o| !o.text.trim().is_empty())
        .collect()
}

/// The source's blocks: paragraphs separated by blank lines, with fenced code blocks kept
/// whole (blank lines inside them included).
fn blocks(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut fence: Option<&str> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if let Some(open) = fence {
            current.push(line);
            if trimmed.starts_with(open) {
                fence = None;
                out.push(current.join("\n"));
                current.clear();
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
            fence = Some(if trimmed.starts_with("```") { "```" } else { "~~~" });
            current.push(line);
            continue;
        }
        if trimmed.is_empty() {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
            continue;
        }
        current.push(line);
    }
    if !current.is_empty() {
        out.push(current.join("\n"));
    }
    out
}

/// Cuts one block whose rendering is over the limit into parts whose renderings fit. A fenced
/// code block is cut on lines and each part gets the fence again.
fn cut_block(block: &str, limit: usize, measure: Measure, render: fn(&str) -> String) -> Vec<String> {
    let first = block.lines().next().unwrap_or_default().trim_start();
    if first.starts_with("```") || first.starts_with("~~~") {
        let fence_len = 3;
        let opening = first.to_owned();
        let lines: Vec<&str> = block.lines().collect();
        let body_end = if lines.len() > 1 && lines[lines.len() - 1].trim_start().starts_with(&opening[..fence_len]) {
            lines.len() - 1
        } else {
            lines.len()
        };
        let body = lines[1..body_end.max(1)].join("\n");
        let closing = &opening[..fence_len];
        // Room for the fence and the tags rendering adds.
        let room = limit.saturating_sub(measure.len(&render(&format!("{opening}\n\n{closing}"))) + 8).max(limit / 4);
        return cut_text(&body, room, measure)
            .into_iter()
            .map(|part| format!("{opening}\n{part}\n{closing}"))
            .collect();
    }
    // Text: leave room for what rendering adds (escapes, tags), then check each part.
    let mut room = limit;
    loop {
        let parts = cut_text(block, room, measure);
        if parts.iter().all(|p| measure.len(&render(p)) <= limit) || room <= limit / 8 {
            return parts;
        }
        room = room * 3 / 4;
    }
}

/// Cuts text into parts of at most `limit`, preferring line, then sentence, then word
/// boundaries; parts are trimmed and never empty.
pub fn cut_text(text: &str, limit: usize, measure: Measure) -> Vec<String> {
    let limit = limit.max(1);
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if measure.len(rest) <= limit {
            out.push(rest.to_owned());
            break;
        }
        // The longest prefix within the limit, on a char boundary.
        let mut end = 0;
        let mut used = 0;
        for (at, c) in rest.char_indices() {
            let width = match measure {
                Measure::Utf16 => c.len_utf16(),
                Measure::Chars => 1,
            };
            if used + width > limit {
                break;
            }
            used += width;
            end = at + c.len_utf8();
        }
        let window = &rest[..end];
        let cut = best_cut(window).unwrap_or(end);
        let (part, tail) = rest.split_at(cut);
        let part = part.trim_end();
        if !part.is_empty() {
            out.push(part.to_owned());
        }
        rest = tail.trim_start();
    }
    out
}

/// Where to cut a window: after the last paragraph break, line break, sentence end or space
/// in its second half (so parts stay large); `None` when there is none.
fn best_cut(window: &str) -> Option<usize> {
    let half = window.len() / 2;
    let after = |pattern: &str| window.rfind(pattern).filter(|&at| at >= half).map(|at| at + pattern.len());
    after("\n\n")
        .or_else(|| after("\n"))
        .or_else(|| ["。", ". ", "! ", "? ", "; "].iter().filter_map(|p| after(p)).max())
        .or_else(|| after(" "))
}

/// Text without tags and with the HTML entities this module writes decoded.
pub fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

/// Plain text is its own rendering (for platforms or fallbacks without formatting).
pub fn plain(text: &str) -> String {
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telegram(markdown: &str) -> Vec<Outgoing> {
        split(&[Piece::Markdown(markdown.to_owned())], TELEGRAM_LIMIT, Measure::Utf16, telegram_html)
    }

    #[test]
    fn markdown_becomes_telegrams_html_subset_with_everything_else_escaped() {
        let html = telegram_html(
            "# Title\n\nSome **bold** and _it_ with `a<b>` & [link](https://x.org/?a=1&b=2).\n\n- one\n- two\n\n<script>x</script>",
        );
        assert_eq!(
            html,
            "<b>Title</b>\n\nSome <b>bold</b> and <i>it</i> with <code>a&lt;b&gt;</code> &amp; \
             <a href=\"https://x.org/?a=1&amp;b=2\">link</a>.\n\n• one\n• two\n\n&lt;script&gt;x&lt;/script&gt;"
        );
        let code = telegram_html("```rust\nfn main() { 1 < 2 }\n```");
        assert_eq!(code, "<pre><code class=\"language-rust\">fn main() { 1 &lt; 2 }</code></pre>");
        // Links to anything but the web keep their text and lose the link.
        assert_eq!(telegram_html("[x](javascript:alert(1))"), "x");
    }

    #[test]
    fn markdown_v2_escapes_every_reserved_character() {
        let text = "a_b*c[d]e(f)g~h`i>j#k+l-m=n|o{p}q.r!s\\t";
        let escaped = escape_markdown_v2(text);
        assert_eq!(escaped, "a\\_b\\*c\\[d\\]e\\(f\\)g\\~h\\`i\\>j\\#k\\+l\\-m\\=n\\|o\\{p\\}q\\.r\\!s\\\\t");
        // Unescaping gives the text back.
        let mut back = String::new();
        let mut chars = escaped.chars();
        while let Some(c) = chars.next() {
            back.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
        }
        assert_eq!(back, text);
    }

    #[test]
    fn a_ten_thousand_character_answer_splits_on_paragraphs_in_order() {
        let paragraphs: Vec<String> =
            (0..40).map(|i| format!("Paragraph {i}: {}", "lorem ipsum dolor sit amet. ".repeat(8))).collect();
        let answer = paragraphs.join("\n\n");
        assert!(answer.chars().count() >= 9_000);
        let messages = telegram(&answer);
        assert!(messages.len() >= 3, "{}", messages.len());
        for m in &messages {
            assert!(Measure::Utf16.len(&m.text) <= TELEGRAM_LIMIT);
            assert!(!m.text.trim().is_empty());
            // Every message ends on a whole paragraph.
            assert!(m.plain.trim_end().ends_with('.'), "{:?}", &m.plain[m.plain.len() - 20..]);
        }
        let rejoined: Vec<String> =
            messages.iter().flat_map(|m| m.plain.split("\n\n").map(|p| p.trim_end().to_owned())).collect();
        assert_eq!(rejoined, paragraphs.iter().map(|p| p.trim_end().to_owned()).collect::<Vec<_>>());
    }

    #[test]
    fn one_huge_paragraph_is_cut_on_sentences_and_counted_in_utf16() {
        // Each emoji is two UTF-16 units: the limit is reached at half the characters.
        let sentence = "Ciao 😀😀😀 questa è una frase. ";
        let answer = sentence.repeat(400);
        let messages = telegram(&answer);
        for m in &messages {
            assert!(Measure::Utf16.len(&m.text) <= TELEGRAM_LIMIT, "{}", Measure::Utf16.len(&m.text));
            assert!(
                m.plain.ends_with('.'),
                "cut on a sentence: {:?}",
                m.plain.chars().rev().take(10).collect::<String>()
            );
        }
        let words: usize = messages.iter().map(|m| m.plain.matches("frase.").count()).sum();
        assert_eq!(words, 400);
    }

    #[test]
    fn text_that_grows_when_escaped_still_fits() {
        let answer = "&".repeat(5000);
        let messages = telegram(&answer);
        assert!(messages.len() >= 5);
        for m in &messages {
            assert!(Measure::Utf16.len(&m.text) <= TELEGRAM_LIMIT);
        }
        let total: usize = messages.iter().map(|m| m.plain.len()).sum();
        assert_eq!(total, 5000);
    }

    #[test]
    fn long_code_blocks_keep_their_fences_in_every_part() {
        let code: String = (0..600).map(|i| format!("let x{i} = {i} < {};\n", i + 1)).collect();
        let answer = format!("Here:\n\n```rust\n{code}```\n\nDone.");
        let messages = telegram(&answer);
        assert!(messages.len() >= 2);
        for m in &messages {
            assert!(Measure::Utf16.len(&m.text) <= TELEGRAM_LIMIT);
            assert_eq!(m.text.matches("<pre>").count(), m.text.matches("</pre>").count());
        }
        assert!(messages[0].text.starts_with("Here:"));
        assert!(messages.last().is_some_and(|m| m.text.ends_with("Done.")));
    }

    #[test]
    fn nothing_to_say_is_no_message_and_a_footer_rides_on_the_last() {
        assert!(telegram("  \n\n ").is_empty());
        let messages = split(
            &[Piece::Markdown("Answer.".into()), Piece::Ready("<i>seal</i>".into())],
            TELEGRAM_LIMIT,
            Measure::Utf16,
            telegram_html,
        );
        assert_eq!(messages, vec![Outgoing { text: "Answer.\n\n<i>seal</i>".into(), plain: "Answer.\n\nseal".into() }]);
    }

    #[test]
    fn discord_counts_characters_and_sends_plain_markdown() {
        let answer = "word ".repeat(1000);
        let messages = split(&[Piece::Markdown(answer)], DISCORD_LIMIT, Measure::Chars, plain);
        assert!(messages.len() >= 3);
        assert!(messages.iter().all(|m| m.text.chars().count() <= DISCORD_LIMIT && m.text.ends_with("word")));
    }
}
