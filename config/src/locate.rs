//! Maps a field path (`static_resources.clusters[0].hosts`) back to a line of the source
//! text. serde values carry no spans, so this walks the text itself: a small span-aware
//! JSON scanner for JSON documents and an indentation-aware scan for block-style YAML.
//! When the path leaves what the scan understands (flow collections, anchors), the line of
//! the deepest segment found is returned, which is still the right neighbourhood.

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A mapping key (proto field name or map key).
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Splits `a.b[0].c["map.key"]` into segments.
pub(crate) fn parse_path(path: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut chars = path.chars().peekable();
    let mut key = String::new();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !key.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut key)));
                }
            }
            '[' => {
                if !key.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut key)));
                }
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    inner.push(c);
                }
                if let Ok(index) = inner.parse::<usize>() {
                    segments.push(Segment::Index(index));
                } else {
                    segments.push(Segment::Key(inner.trim_matches('"').to_string()));
                }
            }
            _ => key.push(c),
        }
    }
    if !key.is_empty() {
        segments.push(Segment::Key(key));
    }
    segments
}

/// The spellings a proto field may have in the source: as written and lowerCamelCase.
fn spellings(key: &str) -> [String; 2] {
    let mut camel = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            camel.extend(c.to_uppercase());
            upper = false;
        } else {
            camel.push(c);
        }
    }
    [key.to_string(), camel]
}

/// 1-based line where `path` is found in `text` (YAML or JSON), if any part of it is.
pub(crate) fn line_of(text: &str, path: &str) -> Option<usize> {
    let segments = parse_path(path);
    if segments.is_empty() {
        return None;
    }
    if text.trim_start().starts_with('{') {
        json::locate(text, &segments)
    } else {
        yaml::locate(text, &segments)
    }
}

mod yaml {
    use super::{spellings, Segment};

    /// A significant line: its number, raw indent and content after the indent.
    struct Line<'a> {
        number: usize,
        indent: usize,
        content: &'a str,
    }

    fn significant_lines(text: &str) -> Vec<Line<'_>> {
        text.lines()
            .enumerate()
            .filter_map(|(i, raw)| {
                let content = raw.trim_start();
                if content.is_empty()
                    || content.starts_with('#')
                    || content.starts_with("---")
                    || content.starts_with("%")
                {
                    return None;
                }
                Some(Line {
                    number: i + 1,
                    indent: raw.len() - content.len(),
                    content,
                })
            })
            .collect()
    }

    /// Skips `- ` list markers, returning the column and text of what follows.
    fn strip_dashes(column: usize, content: &str) -> (usize, &str) {
        let mut column = column;
        let mut rest = content;
        while let Some(after) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
            let trimmed = after.trim_start();
            column += rest.len() - trimmed.len();
            rest = trimmed;
        }
        (column, rest)
    }

    fn key_matches(content: &str, key: &str) -> bool {
        spellings(key).iter().any(|k| {
            [format!("{k}:"), format!("\"{k}\":"), format!("'{k}':")]
                .iter()
                .any(|p| {
                    content.starts_with(p.as_str())
                        && content[p.len()..]
                            .chars()
                            .next()
                            .is_none_or(|c| c == ' ' || c == '\t')
                })
        })
    }

    /// The current node: `lines[start..end]`, where the first line's content begins at
    /// column `first_column` (after a list marker, or at its indent).
    struct Node {
        start: usize,
        end: usize,
        first_column: usize,
    }

    impl Node {
        /// Column and text of line `i` as seen inside this node.
        fn view<'a>(&self, lines: &[Line<'a>], i: usize) -> (usize, &'a str) {
            let line = &lines[i];
            if i == self.start {
                let skip = self
                    .first_column
                    .saturating_sub(line.indent)
                    .min(line.content.len());
                (line.indent + skip, &line.content[skip..])
            } else {
                (line.indent, line.content)
            }
        }

        /// Narrows to the value that follows line `hit` (a key line or item), until a
        /// line at or left of `column` (a sequence at the key's own column still belongs
        /// to it when `allow_same_column_dash`).
        fn after(
            lines: &[Line<'_>],
            hit: usize,
            end: usize,
            column: usize,
            allow_same_column_dash: bool,
        ) -> usize {
            (hit + 1..end)
                .find(|&i| {
                    let line = &lines[i];
                    line.indent < column
                        || (line.indent == column
                            && !(allow_same_column_dash && line.content.starts_with('-')))
                })
                .unwrap_or(end)
        }
    }

    pub(super) fn locate(text: &str, segments: &[Segment]) -> Option<usize> {
        let lines = significant_lines(text);
        let mut node = Node {
            start: 0,
            end: lines.len(),
            first_column: lines.first()?.indent,
        };
        let mut found = None;
        for segment in segments {
            if node.start >= node.end {
                return found;
            }
            match segment {
                Segment::Key(key) => {
                    let (first_col, first_text) = node.view(&lines, node.start);
                    let child_column = strip_dashes(first_col, first_text).0;
                    let hit = (node.start..node.end).find(|&i| {
                        let (col, text) = node.view(&lines, i);
                        let (column, rest) = strip_dashes(col, text);
                        column == child_column && key_matches(rest, key)
                    })?;
                    found = Some(lines[hit].number);
                    let end = Node::after(&lines, hit, node.end, child_column, true);
                    node = Node {
                        start: hit + 1,
                        end,
                        first_column: lines.get(hit + 1).map_or(0, |l| l.indent),
                    };
                }
                Segment::Index(index) => {
                    let (marker_column, _) = node.view(&lines, node.start);
                    let items: Vec<usize> = (node.start..node.end)
                        .filter(|&i| {
                            let (col, text) = node.view(&lines, i);
                            col == marker_column && text.starts_with('-')
                        })
                        .collect();
                    let hit = *items.get(*index)?;
                    found = Some(lines[hit].number);
                    let end = items.get(index + 1).copied().unwrap_or_else(|| {
                        Node::after(&lines, hit, node.end, marker_column, false)
                    });
                    let (col, text) = node.view(&lines, hit);
                    let after_marker = text[1..].trim_start();
                    node = if after_marker.is_empty() {
                        Node {
                            start: hit + 1,
                            end,
                            first_column: lines.get(hit + 1).map_or(0, |l| l.indent),
                        }
                    } else {
                        Node {
                            start: hit,
                            end,
                            first_column: col + (text.len() - after_marker.len()),
                        }
                    };
                }
            }
        }
        found
    }
}

mod json {
    use super::{spellings, Segment};

    /// A cursor over JSON text that knows its line.
    struct Scanner<'a> {
        bytes: &'a [u8],
        pos: usize,
        line: usize,
    }

    impl Scanner<'_> {
        fn skip_ws(&mut self) {
            while let Some(&b) = self.bytes.get(self.pos) {
                match b {
                    b'\n' => self.line += 1,
                    b' ' | b'\t' | b'\r' | b',' | b':' => {}
                    _ => return,
                }
                self.pos += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.skip_ws();
            self.bytes.get(self.pos).copied()
        }

        fn string(&mut self) -> Option<String> {
            if self.peek()? != b'"' {
                return None;
            }
            self.pos += 1;
            let begin = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                match b {
                    b'\\' => self.pos += 2,
                    b'"' => {
                        let s = String::from_utf8_lossy(&self.bytes[begin..self.pos]).into_owned();
                        self.pos += 1;
                        return Some(s);
                    }
                    b'\n' => {
                        self.line += 1;
                        self.pos += 1;
                    }
                    _ => self.pos += 1,
                }
            }
            None
        }

        fn skip_value(&mut self) -> Option<()> {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    let mut depth = 0usize;
                    loop {
                        match self.peek()? {
                            b'"' => {
                                self.string()?;
                            }
                            b'{' | b'[' => {
                                depth += 1;
                                self.pos += 1;
                            }
                            b'}' | b']' => {
                                depth -= 1;
                                self.pos += 1;
                                if depth == 0 {
                                    return Some(());
                                }
                            }
                            _ => self.pos += 1,
                        }
                    }
                }
                _ => {
                    while let Some(&b) = self.bytes.get(self.pos) {
                        if matches!(b, b',' | b'}' | b']' | b'\n' | b' ' | b'\t' | b'\r') {
                            break;
                        }
                        self.pos += 1;
                    }
                }
            }
            Some(())
        }
    }

    pub(super) fn locate(text: &str, segments: &[Segment]) -> Option<usize> {
        let mut scanner = Scanner {
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
        };
        let mut found = None;
        for segment in segments {
            match segment {
                Segment::Key(key) => {
                    if scanner.peek() != Some(b'{') {
                        return found;
                    }
                    scanner.pos += 1;
                    let names = spellings(key);
                    loop {
                        match scanner.peek() {
                            Some(b'"') => {}
                            _ => return found,
                        }
                        let line = scanner.line;
                        let name = scanner.string()?;
                        if names.contains(&name) {
                            found = Some(line);
                            break;
                        }
                        if scanner.skip_value().is_none() {
                            return found;
                        }
                    }
                }
                Segment::Index(index) => {
                    if scanner.peek() != Some(b'[') {
                        return found;
                    }
                    scanner.pos += 1;
                    for _ in 0..*index {
                        if scanner.peek() == Some(b']') || scanner.skip_value().is_none() {
                            return found;
                        }
                    }
                    if scanner.peek().is_none_or(|b| b == b']') {
                        return found;
                    }
                    found = Some(scanner.line);
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
static_resources:
  listeners:
  - name: a
    address:
      socket_address: { address: 0.0.0.0, port_value: 1 }
  - name: b
    filter_chains:
      - filters:
        - name: x
          typed_config:
            stat_prefix: s
  clusters:
    -
      name: c0
    - name: c1
      connectTimeout: 1s
      hosts: []
";

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("a.b[2].c[\"x.y\"]"),
            vec![
                Segment::Key("a".into()),
                Segment::Key("b".into()),
                Segment::Index(2),
                Segment::Key("c".into()),
                Segment::Key("x.y".into()),
            ]
        );
    }

    #[test]
    fn finds_yaml_lines() {
        assert_eq!(line_of(YAML, "static_resources.listeners[0].name"), Some(3));
        assert_eq!(line_of(YAML, "static_resources.listeners[1]"), Some(6));
        assert_eq!(
            line_of(YAML, "static_resources.listeners[0].address.socket_address"),
            Some(5)
        );
        assert_eq!(
            line_of(YAML, "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.stat_prefix"),
            Some(11)
        );
        assert_eq!(line_of(YAML, "static_resources.clusters[0].name"), Some(14));
        assert_eq!(
            line_of(YAML, "static_resources.clusters[1].hosts"),
            Some(17)
        );
        assert_eq!(
            line_of(YAML, "static_resources.clusters[1].connect_timeout"),
            Some(16)
        );
        // A flow mapping is reported at its key's line.
        assert_eq!(
            line_of(
                YAML,
                "static_resources.listeners[0].address.socket_address.port_value"
            ),
            Some(5)
        );
    }

    #[test]
    fn finds_json_lines() {
        let json = "{\n \"static_resources\": {\n  \"clusters\": [\n   {\"name\": \"a\"},\n   {\n    \"name\": \"b\",\n    \"hosts\": []\n   }\n  ]\n }\n}\n";
        assert_eq!(line_of(json, "static_resources.clusters[1].hosts"), Some(7));
        assert_eq!(line_of(json, "static_resources.clusters[0].name"), Some(4));
    }
}
