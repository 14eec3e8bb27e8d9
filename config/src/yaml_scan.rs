//! A scanner for the plain subset of YAML that bootstraps are written in, straight into a
//! compact JSON tree ([`Node`]: strings borrowed from the text, objects as exact-size
//! slices) or, converted, a `serde_json::Value`: block mappings and sequences, flow `{...}` and `[...]` (JSON
//! included), plain and one-line quoted scalars, comments. A 10,000-cluster bootstrap
//! spent about 500 instructions per input byte in libyaml's events and serde_yaml_ng's
//! deserializer; this takes a few dozen.
//!
//! Anything outside the subset (anchors, aliases, tags, block scalars, multi-line
//! scalars, document markers, tabs, non-ASCII text, duplicate or non-string keys, any
//! syntax error) answers `None`, and the caller takes the serde_yaml_ng path, so values and
//! error messages are that path's. Plain scalars resolve as serde_yaml_ng resolves them
//! (YAML 1.2 core schema: null, booleans, integers in 10/16/8/2, floats, else a string).

use std::borrow::Cow;

use serde_json::Value;

use crate::json_tree::Node;
pub(crate) use plain::resolve_plain;
pub(crate) use tree::Build;
use tree::TreeBuild;

/// Deeper nesting goes the serde_yaml_ng way (it has its own recursion limit).
const MAX_DEPTH: usize = 100;

/// libyaml's longest simple (implicit) key.
const MAX_KEY_LEN: usize = 1024;

/// Parses `text` into a JSON value (`Null` for an empty document), or `None` when the
/// text is outside the subset.
pub(crate) fn parse(text: &str) -> Option<Value> {
    parse_tree(text).map(Node::into_value)
}

/// [`parse`] into the compact tree, which borrows from `text`.
pub(crate) fn parse_tree(text: &str) -> Option<Node<'_>> {
    match scan(text, TreeBuild::default(), ())? {
        (_, Some(tree)) => Some(tree),
        (_, None) => Some(Node::Null),
    }
}

/// Scans `text` into what `build` makes of it, the document's node going to `root`:
/// the builder and the document's value, `None` for an empty document; `None` when the
/// text is outside the subset or the builder gave up.
pub(crate) fn scan<'a, B: Build<'a>>(
    text: &'a str,
    build: B,
    root: B::Slot,
) -> Option<(B, Option<B::Value>)> {
    // Printable ASCII and newlines only: tabs, carriage returns, other line breaks
    // (NEL, U+2028) and libyaml's character checks stay with libyaml.
    if !printable_ascii(text.as_bytes()) {
        return None;
    }
    let mut scanner = Scanner {
        src: text.as_bytes(),
        text,
        pos: 0,
        line_start: 0,
        depth: 0,
        build,
    };
    scanner.skip_blank_lines()?;
    if scanner.at_end() {
        return Some((scanner.build, None));
    }
    let column = scanner.column();
    let value = scanner.block_node(column, -1, root)?;
    scanner.skip_blank_lines()?;
    scanner.at_end().then_some((scanner.build, Some(value)))
}

struct Scanner<'a, B> {
    src: &'a [u8],
    /// `src` as text: all ASCII (checked first), so slices of it need no UTF-8 check.
    text: &'a str,
    pos: usize,
    /// Offset of the current line's first byte.
    line_start: usize,
    depth: usize,
    /// What the document is read into (the compact tree, or wire bytes).
    build: B,
}

/// What ended a plain scalar's scan.
#[derive(PartialEq)]
enum Context {
    Block,
    Flow,
}

impl<'a, B: Build<'a>> Scanner<'a, B> {
    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    fn column(&self) -> isize {
        (self.pos - self.line_start) as isize
    }

    /// Whether the byte `ahead` positions on is a space, a line end or the end.
    fn blank_at(&self, ahead: usize) -> bool {
        matches!(self.peek_at(ahead), None | Some(b' ' | b'\n'))
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// Skips a comment up to (not over) its line end.
    fn skip_comment(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    fn newline(&mut self) {
        self.pos += 1;
        self.line_start = self.pos;
    }

    /// Skips spaces, comments and line ends up to the next content. `None` on a document
    /// marker (`---`, `...`) or a directive at a line's start.
    fn skip_blank_lines(&mut self) -> Option<()> {
        loop {
            if self.pos == self.line_start {
                let rest = &self.src[self.pos..];
                if (rest.starts_with(b"---") || rest.starts_with(b"...")) && self.blank_at(3) {
                    return None;
                }
                if rest.first() == Some(&b'%') {
                    return None;
                }
            }
            match self.peek() {
                Some(b' ') => self.pos += 1,
                Some(b'\n') => self.newline(),
                Some(b'#') => self.skip_comment(),
                _ => return Some(()),
            }
        }
    }

    /// After a node on its line: spaces and a comment only, then the next content.
    fn end_of_line(&mut self) -> Option<()> {
        self.skip_spaces();
        match self.peek() {
            None | Some(b'\n') => {}
            Some(b'#') => self.skip_comment(),
            _ => return None,
        }
        self.skip_blank_lines()
    }

    fn descend(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// A block node starting here at `column` (content inside a block collection whose
    /// indentation is `parent`).
    fn block_node(&mut self, column: isize, parent: isize, slot: B::Slot) -> Option<B::Value> {
        self.descend()?;
        let value = match self.peek()? {
            b'-' if self.blank_at(1) => self.block_sequence(column, slot)?,
            b'{' | b'[' => {
                let value = self.flow_node(parent, slot)?;
                self.end_of_line()?;
                value
            }
            _ => {
                let key_start = self.pos;
                let scalar = self.scalar(Context::Block)?;
                self.skip_spaces();
                if self.peek() == Some(b':') && self.blank_at(1) {
                    self.pos = key_start;
                    self.block_mapping(column, slot)?
                } else {
                    self.end_of_line()?;
                    self.build.scalar(slot, scalar)?
                }
            }
        };
        self.depth -= 1;
        Some(value)
    }

    /// A block sequence whose `-` entries sit at `column`.
    fn block_sequence(&mut self, column: isize, slot: B::Slot) -> Option<B::Value> {
        let mut sequence = self.build.seq_start(slot)?;
        loop {
            // At a `-` followed by a blank.
            self.pos += 1;
            self.skip_spaces();
            let item_slot = self.build.seq_item(&sequence);
            let item = match self.peek() {
                None | Some(b'\n') | Some(b'#') => {
                    self.end_of_line()?;
                    self.nested_or_null(column, item_slot)?
                }
                Some(_) => {
                    let at = self.column();
                    self.block_node(at, column, item_slot)?
                }
            };
            self.build.seq_push(&mut sequence, item)?;
            if self.at_end() {
                break;
            }
            let next = self.column();
            if next > column {
                return None;
            }
            if next < column || !(self.peek() == Some(b'-') && self.blank_at(1)) {
                break;
            }
        }
        self.build.seq_end(sequence)
    }

    /// The value of an entry whose line ended after its indicator: a node indented
    /// more than `column`, or null.
    fn nested_or_null(&mut self, column: isize, slot: B::Slot) -> Option<B::Value> {
        if self.at_end() {
            return self.build.scalar(slot, Node::Null);
        }
        let at = self.column();
        if at > column {
            self.block_node(at, column, slot)
        } else {
            self.build.scalar(slot, Node::Null)
        }
    }

    /// A block mapping whose keys sit at `column`.
    fn block_mapping(&mut self, column: isize, slot: B::Slot) -> Option<B::Value> {
        let mut mapping = self.build.map_start(slot)?;
        loop {
            let key = self.key(Context::Block)?;
            self.skip_spaces();
            // `:` followed by a blank, checked by the caller for the first key.
            if !(self.peek() == Some(b':') && self.blank_at(1)) {
                return None;
            }
            let value_slot = self.build.map_key(&mut mapping, &key)?;
            self.pos += 1;
            self.skip_spaces();
            let value = match self.peek() {
                None | Some(b'\n') | Some(b'#') => {
                    self.end_of_line()?;
                    if !self.at_end()
                        && self.column() == column
                        && self.peek() == Some(b'-')
                        && self.blank_at(1)
                    {
                        // A sequence may sit at its key's indentation.
                        self.descend()?;
                        let sequence = self.block_sequence(column, value_slot)?;
                        self.depth -= 1;
                        sequence
                    } else {
                        self.nested_or_null(column, value_slot)?
                    }
                }
                Some(_) => self.inline_value(column, value_slot)?,
            };
            self.build.map_push(&mut mapping, key, value)?;
            if self.at_end() {
                break;
            }
            let next = self.column();
            if next > column {
                return None;
            }
            if next < column {
                break;
            }
            if self.peek() == Some(b'-') && self.blank_at(1) {
                // A sequence entry at a mapping's indentation: not YAML.
                return None;
            }
        }
        self.build.map_end(mapping)
    }

    /// A mapping value on its key's line: a scalar or a flow collection, then the line's end.
    fn inline_value(&mut self, column: isize, slot: B::Slot) -> Option<B::Value> {
        match self.peek()? {
            b'{' | b'[' => {
                let value = self.flow_node(column, slot)?;
                self.end_of_line()?;
                Some(value)
            }
            b'-' if self.blank_at(1) => None,
            _ => {
                let scalar = self.scalar(Context::Block)?;
                self.end_of_line()?;
                self.build.scalar(slot, scalar)
            }
        }
    }

    /// A mapping key: a scalar that resolves to a string, on one line.
    fn key(&mut self, context: Context) -> Option<Cow<'a, str>> {
        let start = self.pos;
        let key = match self.scalar(context)? {
            Node::String(key) => key,
            _ => return None,
        };
        (self.pos - start <= MAX_KEY_LEN).then_some(key)
    }

    /// A plain or quoted scalar on one line.
    fn scalar(&mut self, context: Context) -> Option<Node<'a>> {
        match self.peek()? {
            b'\'' => self.single_quoted().map(Node::String),
            b'"' => self.double_quoted().map(Node::String),
            _ => self.plain(context),
        }
    }

    fn plain(&mut self, context: Context) -> Option<Node<'a>> {
        let first = self.peek()?;
        match first {
            // Indicators that start something else, or that this subset leaves out.
            b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%'
            | b'@' | b'`' | b'?' | b':' => return None,
            b'-' if self.blank_at(1) => return None,
            _ => {}
        }
        let src = self.src;
        let flow = context == Context::Flow;
        let start = self.pos;
        let mut at = start;
        let mut end = start;
        while let Some(&b) = src.get(at) {
            if PLAIN_STOPS[usize::from(b)] {
                match b {
                    b'\n' => break,
                    b' ' => {
                        if src.get(at + 1) == Some(&b'#') {
                            break;
                        }
                        // Trailing spaces are not part of the scalar.
                        at += 1;
                        continue;
                    }
                    b':' => {
                        if matches!(src.get(at + 1), None | Some(b' ' | b'\n')) {
                            break;
                        }
                        if flow {
                            // libyaml reads `a:b` as one scalar in flow context, or fails.
                            return None;
                        }
                    }
                    // `,` and the brackets end a scalar in flow context only.
                    _ if flow => break,
                    _ => {}
                }
            }
            at += 1;
            end = at;
        }
        self.pos = at;
        let text = self.text.get(start..end)?;
        resolve_plain(text)
    }

    /// A single-quoted scalar: borrowed from the text unless it holds a `''`.
    fn single_quoted(&mut self) -> Option<Cow<'a, str>> {
        self.pos += 1;
        let mut out: Option<String> = None;
        loop {
            let run_start = self.pos;
            while !matches!(self.peek()?, b'\'' | b'\n') {
                self.pos += 1;
            }
            let run = self.text.get(run_start..self.pos)?;
            if self.peek()? == b'\n' {
                return None;
            }
            self.pos += 1;
            if self.peek() == Some(b'\'') {
                let out = out.get_or_insert_with(String::new);
                out.push_str(run);
                out.push('\'');
                self.pos += 1;
            } else {
                return Some(with_run(out, run));
            }
        }
    }

    /// A double-quoted scalar: borrowed from the text unless it holds an escape.
    fn double_quoted(&mut self) -> Option<Cow<'a, str>> {
        self.pos += 1;
        let mut out: Option<String> = None;
        loop {
            let run_start = self.pos;
            while !matches!(self.peek()?, b'"' | b'\\' | b'\n') {
                self.pos += 1;
            }
            let run = self.text.get(run_start..self.pos)?;
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(with_run(out, run));
                }
                b'\n' => return None,
                _ => {
                    let out = out.get_or_insert_with(String::new);
                    out.push_str(run);
                    let escaped = self.peek_at(1)?;
                    self.pos += 2;
                    let c = match escaped {
                        b'0' => '\0',
                        b'a' => '\x07',
                        b'b' => '\x08',
                        b't' => '\t',
                        b'n' => '\n',
                        b'v' => '\x0b',
                        b'f' => '\x0c',
                        b'r' => '\r',
                        b'e' => '\x1b',
                        b' ' => ' ',
                        b'"' => '"',
                        b'/' => '/',
                        b'\'' => '\'',
                        b'\\' => '\\',
                        b'x' => self.hex_escape(2)?,
                        b'u' => self.hex_escape(4)?,
                        b'U' => self.hex_escape(8)?,
                        _ => return None,
                    };
                    out.push(c);
                }
            }
        }
    }

    fn hex_escape(&mut self, digits: usize) -> Option<char> {
        let hex = self.text.get(self.pos..self.pos + digits)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += digits;
        char::from_u32(u32::from_str_radix(hex, 16).ok()?)
    }

    /// Spaces, line ends and comments inside a flow collection. A line inside one must be
    /// indented more than the block collection around it (`parent`).
    #[inline]
    fn skip_flow_blanks(&mut self, parent: isize) -> Option<()> {
        // Most calls (a few per flow entry) stand on content or one space: answered here
        // without the loop's call.
        match self.peek() {
            Some(b' ') if !matches!(self.peek_at(1), Some(b' ' | b'\n' | b'#')) => {
                self.pos += 1;
                Some(())
            }
            Some(b' ' | b'\n' | b'#') => self.skip_flow_blank_run(parent),
            _ => Some(()),
        }
    }

    /// [`Self::skip_flow_blanks`] past more than one space.
    #[inline(never)]
    fn skip_flow_blank_run(&mut self, parent: isize) -> Option<()> {
        loop {
            match self.peek() {
                Some(b' ') => self.pos += 1,
                Some(b'\n') => {
                    self.newline();
                    self.skip_spaces();
                    if self.column() <= parent && !self.at_end() && self.peek() != Some(b'\n') {
                        return None;
                    }
                    if self.pos == self.line_start && self.peek() == Some(b'%') {
                        return None;
                    }
                }
                Some(b'#') => {
                    let after_blank = self.pos == self.line_start || self.src[self.pos - 1] == b' ';
                    if !after_blank {
                        return None;
                    }
                    self.skip_comment();
                }
                _ => return Some(()),
            }
        }
    }

    /// `{...}` or `[...]` starting here.
    fn flow_node(&mut self, parent: isize, slot: B::Slot) -> Option<B::Value> {
        self.descend()?;
        let value = match self.peek()? {
            b'{' => self.flow_mapping(parent, slot)?,
            b'[' => self.flow_sequence(parent, slot)?,
            _ => return None,
        };
        self.depth -= 1;
        Some(value)
    }

    /// A flow collection's entry value.
    fn flow_value(&mut self, parent: isize, slot: B::Slot) -> Option<B::Value> {
        match self.peek()? {
            b'{' | b'[' => self.flow_node(parent, slot),
            b'-' if matches!(self.peek_at(1), Some(b' ' | b'\n' | b',' | b']' | b'}')) => None,
            _ => {
                let value = self.scalar(Context::Flow)?;
                if self.src[self.pos - 1] != b'"' && self.src[self.pos - 1] != b'\'' {
                    // A plain scalar that ran to a line end may continue on the next line.
                    if self.peek() == Some(b'\n') {
                        let save = (self.pos, self.line_start);
                        self.skip_flow_blanks(parent)?;
                        if !matches!(self.peek(), Some(b',' | b']' | b'}' | b':') | None) {
                            return None;
                        }
                        (self.pos, self.line_start) = save;
                    }
                }
                self.build.scalar(slot, value)
            }
        }
    }

    fn flow_sequence(&mut self, parent: isize, slot: B::Slot) -> Option<B::Value> {
        self.pos += 1;
        let mut sequence = self.build.seq_start(slot)?;
        loop {
            self.skip_flow_blanks(parent)?;
            if self.peek()? == b']' {
                self.pos += 1;
                return self.build.seq_end(sequence);
            }
            let item_slot = self.build.seq_item(&sequence);
            let item = self.flow_value(parent, item_slot)?;
            self.build.seq_push(&mut sequence, item)?;
            self.skip_flow_blanks(parent)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return self.build.seq_end(sequence);
                }
                // `[a: b]` (a one-pair mapping) and anything else.
                _ => return None,
            }
        }
    }

    fn flow_mapping(&mut self, parent: isize, slot: B::Slot) -> Option<B::Value> {
        self.pos += 1;
        let mut mapping = self.build.map_start(slot)?;
        loop {
            self.skip_flow_blanks(parent)?;
            if self.peek()? == b'}' {
                self.pos += 1;
                return self.build.map_end(mapping);
            }
            let line = self.line_start;
            let key = self.key(Context::Flow)?;
            if self.line_start != line {
                return None;
            }
            self.skip_spaces();
            if self.peek()? != b':' {
                return None;
            }
            let value_slot = self.build.map_key(&mut mapping, &key)?;
            self.pos += 1;
            self.skip_flow_blanks(parent)?;
            let value = match self.peek()? {
                b',' | b'}' => self.build.scalar(value_slot, Node::Null)?,
                _ => self.flow_value(parent, value_slot)?,
            };
            self.build.map_push(&mut mapping, key, value)?;
            self.skip_flow_blanks(parent)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return self.build.map_end(mapping);
                }
                _ => return None,
            }
        }
    }
}

/// A quoted scalar's text: its last run borrowed when nothing came before it (no escape).
fn with_run<'a>(out: Option<String>, run: &'a str) -> Cow<'a, str> {
    match out {
        None => Cow::Borrowed(run),
        Some(mut out) => {
            out.push_str(run);
            Cow::Owned(out)
        }
    }
}

/// Bytes a plain scalar's scan stops to look at: everything else is part of it.
const PLAIN_STOPS: [bool; 256] = {
    let stop_bytes = b"\n :,[]{}";
    let mut stops = [false; 256];
    let mut i = 0;
    while i < stop_bytes.len() {
        stops[stop_bytes[i] as usize] = true;
        i += 1;
    }
    stops
};

/// Whether `bytes` are all printable ASCII or `\n`, a block at a time without an early
/// exit (so the compiler can check many bytes per instruction: this runs over the whole
/// text before anything else).
fn printable_ascii(bytes: &[u8]) -> bool {
    bytes.chunks(256).all(|block| {
        block.iter().fold(true, |ok, &b| {
            ok & ((0x20..0x7f).contains(&b) | (b == b'\n'))
        })
    })
}

mod plain;
mod tree;

#[cfg(test)]
mod tests;
