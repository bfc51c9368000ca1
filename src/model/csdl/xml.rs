//! A small owned XML element tree read with quick-xml, and the strict accessors the CSDL
//! reader uses: every element states which attributes and children it allows, so anything the
//! reader does not understand is an error naming where it is, never silently dropped.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::CsdlError;

/// One XML element: its qualified name as written (`edmx:Edmx`), attributes in document order,
/// child elements, trimmed text content, and where it is (line and a readable path).
#[derive(Debug)]
pub(super) struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    pub text: String,
    pub line: usize,
    pub path: String,
}

impl Node {
    /// The error type for anything wrong at this element.
    pub fn error(&self, message: impl std::fmt::Display) -> CsdlError {
        CsdlError(format!("line {} ({}): {message}", self.line, self.path))
    }

    /// Refuses attributes outside `attrs` and child elements outside `children`. Namespace
    /// declarations (`xmlns`, `xmlns:*`) carry no model facts and are always allowed.
    pub fn allow(&self, attrs: &[&str], children: &[&str]) -> Result<(), CsdlError> {
        if let Some((k, _)) = self
            .attrs
            .iter()
            .find(|(k, _)| !attrs.contains(&k.as_str()) && k != "xmlns" && !k.starts_with("xmlns:"))
        {
            return Err(self.error(format!(
                "unknown attribute {k} on <{}> (the reader knows: {})",
                self.name,
                attrs.join(", ")
            )));
        }
        if let Some(c) = self
            .children
            .iter()
            .find(|c| !children.contains(&c.name.as_str()))
        {
            return Err(c.error(format!(
                "unknown element <{}> inside <{}> (the reader knows: {})",
                c.name,
                self.name,
                if children.is_empty() {
                    "none".to_string()
                } else {
                    children.join(", ")
                }
            )));
        }
        if !self.text.is_empty() {
            return Err(self.error(format!("unexpected text inside <{}>", self.name)));
        }
        Ok(())
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &str) -> Result<&str, CsdlError> {
        self.attr(name)
            .ok_or_else(|| self.error(format!("<{}> needs the attribute {name}", self.name)))
    }

    /// A `true`/`false` attribute (CSDL XML 4.01 §2.2: boolean facets are xs:boolean).
    pub fn bool_attr(&self, name: &str) -> Result<Option<bool>, CsdlError> {
        self.attr(name)
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(self.error(format!("{name}=\"{other}\" is not true or false"))),
            })
            .transpose()
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Reads a whole document into its root element. DTDs, processing instructions, CDATA and
/// entity references in text are refused: CSDL needs none of them.
pub(super) fn parse(text: &str) -> Result<Node, CsdlError> {
    let mut reader = Reader::from_str(text);
    // Lines are counted incrementally: positions only grow, and rescanning from the start for
    // every event would be quadratic.
    let (mut counted_to, mut lines_before) = (0usize, 0usize);
    let mut line_at = |pos: u64| {
        let end = usize::try_from(pos).unwrap_or(text.len()).min(text.len());
        if end > counted_to {
            lines_before += text.as_bytes()[counted_to..end]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            counted_to = end;
        }
        lines_before + 1
    };
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let pos = reader.buffer_position();
        let line = line_at(pos) + leading_newlines(text, pos);
        let event = reader
            .read_event()
            .map_err(|e| CsdlError(format!("line {line}: malformed XML: {e}")))?;
        match event {
            Event::Start(start) => {
                let node = element(&start, line, stack.last())?;
                stack.push(node);
            }
            Event::Empty(start) => {
                let node = element(&start, line, stack.last())?;
                attach(&mut stack, &mut root, node, line)?;
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| CsdlError(format!("line {line}: unbalanced end tag")))?;
                attach(&mut stack, &mut root, node, line)?;
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                let trimmed = content.trim();
                if !trimmed.is_empty() {
                    let top = stack.last_mut().ok_or_else(|| {
                        CsdlError(format!("line {line}: text outside the root element"))
                    })?;
                    top.text.push_str(trimmed);
                }
            }
            Event::Comment(_) | Event::Decl(_) => {}
            Event::CData(_) | Event::PI(_) | Event::DocType(_) | Event::GeneralRef(_) => {
                return Err(CsdlError(format!(
                    "line {line}: CDATA, processing instructions, DTDs and entity references in \
                     text are not used by CSDL and are refused"
                )));
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(CsdlError("the document ends inside an element".into()));
    }
    root.ok_or_else(|| CsdlError("the document has no root element".into()))
}

/// quick-xml reports the position before any whitespace that precedes a tag; count it so the
/// line is the tag's own.
fn leading_newlines(text: &str, pos: u64) -> usize {
    let start = usize::try_from(pos).unwrap_or(text.len()).min(text.len());
    text[start..]
        .bytes()
        .take_while(|b| b.is_ascii_whitespace())
        .filter(|b| *b == b'\n')
        .count()
}

fn element(start: &BytesStart, line: usize, parent: Option<&Node>) -> Result<Node, CsdlError> {
    let name = start.name().as_ref().to_string();
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| CsdlError(format!("line {line}: bad attribute on <{name}>: {e}")))?;
        let key = a.key.as_ref().to_string();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| CsdlError(format!("line {line}: bad value of {key} on <{name}>: {e}")))?
            .into_owned();
        attrs.push((key, value));
    }
    // The path names each ancestor by its Name (or Target/Term) so errors point at a model
    // element, not only a line.
    let label = ["Name", "Target", "Term", "Property"]
        .iter()
        .find_map(|k| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
    let me = match label {
        Some(l) => format!("{name}[{l}]"),
        None => name.clone(),
    };
    let path = match parent {
        Some(p) => format!("{}/{me}", p.path),
        None => me,
    };
    Ok(Node {
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
        line,
        path,
    })
}

fn attach(
    stack: &mut [Node],
    root: &mut Option<Node>,
    node: Node,
    line: usize,
) -> Result<(), CsdlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_none() => *root = Some(node),
        None => return Err(CsdlError(format!("line {line}: a second root element"))),
    }
    Ok(())
}
