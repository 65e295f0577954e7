//! Label and field selectors, parsed, validated and matched exactly as upstream
//! Kubernetes v1.33 does it (`k8s.io/apimachinery/pkg/labels`, `.../pkg/fields`,
//! `metav1.LabelSelectorAsSelector`, the per-kind field label conversion functions
//! and the registries' `GetAttrs`/`ToSelectableFields`).

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

// ---------------------------------------------------------------------------
// Validation (k8s.io/apimachinery/pkg/util/validation) and field errors.
// ---------------------------------------------------------------------------

const QNAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QNAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// `validation.RegexError`, including its quirky `',  or '` separators.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        examples.join(" or ")
    )
}

/// Matches `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`.
fn is_qname_fmt(s: &str) -> bool {
    let b = s.as_bytes();
    matches!((b.first(), b.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// `validation.IsDNS1123Subdomain`.
fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        matches!((b.first(), b.last()), (Some(f), Some(e)) if lower_alnum(f) && lower_alnum(e))
            && b.iter().all(|c| lower_alnum(c) || *c == b'-')
    };
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_owned());
    }
    if !s.split('.').all(label_ok) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `validation.IsQualifiedName`.
fn is_qualified_name(value: &str) -> Vec<String> {
    let qname_regex_error = || regex_error(QNAME_MSG, QNAME_FMT, &["MyName", "my.name", "123-abc"]);
    let mut errs = Vec::new();
    let name = match value.split('/').collect::<Vec<_>>()[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                qname_regex_error()
            )]
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_owned());
    }
    if !is_qname_fmt(name) {
        errs.push(format!("name part {}", qname_regex_error()));
    }
    errs
}

/// `validation.IsValidLabelValue`.
fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !is_qname_fmt(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Go's `strconv.Quote` (as used by `%q` / `%#v` on strings).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => write!(out, "\\x{:02x}", c as u32).unwrap(),
            c if c.is_control() => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `[]string` (an empty list is always a nil slice here).
fn go_string_slice(vals: &[String]) -> String {
    if vals.is_empty() {
        return "[]string(nil)".to_owned();
    }
    let quoted: Vec<String> = vals.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// `field.Invalid(path, value, detail).Error()`.
fn invalid(path: &str, bad_value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {bad_value}: {detail}")
}

/// `field.ErrorList.ToAggregate().Error()`: de-duplicated, bracketed when more than one.
fn aggregate(errs: Vec<String>) -> Result<(), String> {
    let mut uniq: Vec<String> = Vec::new();
    for e in errs {
        if !uniq.contains(&e) {
            uniq.push(e);
        }
    }
    match uniq.len() {
        0 => Ok(()),
        1 => Err(uniq.remove(0)),
        _ => Err(format!("[{}]", uniq.join(", "))),
    }
}

fn validate_label_key(key: &str, path: &str) -> Option<String> {
    let errs = is_qualified_name(key);
    (!errs.is_empty()).then(|| invalid(path, &go_quote(key), &errs.join("; ")))
}

// ---------------------------------------------------------------------------
// Label selectors (k8s.io/apimachinery/pkg/labels/selector.go).
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// `labels.NewRequirement` with a nil field path.
fn new_requirement(key: &str, op: Op, values: Vec<String>) -> Result<Requirement, String> {
    let mut errs: Vec<String> = validate_label_key(key, "key").into_iter().collect();
    let bad_count = |detail: &str| invalid("values", &go_string_slice(&values), detail);
    match op {
        Op::In | Op::NotIn if values.is_empty() => errs.push(bad_count(
            "for 'in', 'notin' operators, values set can't be empty",
        )),
        Op::Equals | Op::DoubleEquals | Op::NotEquals if values.len() != 1 => errs.push(bad_count(
            "exact-match compatibility requires one single value",
        )),
        Op::Exists | Op::DoesNotExist if !values.is_empty() => errs.push(bad_count(
            "values set must be empty for exists and does not exist",
        )),
        Op::GreaterThan | Op::LessThan => {
            if values.len() != 1 {
                errs.push(bad_count(
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    let detail = "for 'Gt', 'Lt' operators, the value must be an integer";
                    errs.push(invalid(&format!("values[{i}]"), &go_quote(v), detail));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let value_errs = is_valid_label_value(v);
        if !value_errs.is_empty() {
            errs.push(invalid(
                &format!("values[{i}][{key}]"),
                &go_quote(v),
                &value_errs.join("; "),
            ));
        }
    }
    aggregate(errs)?;
    Ok(Requirement {
        key: key.to_owned(),
        op,
        values,
    })
}

impl Requirement {
    fn matches(&self, labels: &Map<String, Value>) -> bool {
        let val = labels.get(&self.key).and_then(Value::as_str);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            Op::In | Op::Equals | Op::DoubleEquals => val.is_some_and(has),
            Op::NotIn | Op::NotEquals => !val.is_some_and(has),
            Op::Exists => val.is_some(),
            Op::DoesNotExist => val.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(Ok(l)), [r]) = (val.map(str::parse::<i64>), self.values.as_slice())
                else {
                    return false;
                };
                match r.parse::<i64>() {
                    Ok(r) if self.op == Op::GreaterThan => l > r,
                    Ok(r) => l < r,
                    Err(_) => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == Op::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.op {
            Op::Equals => "=",
            Op::DoubleEquals => "==",
            Op::NotEquals => "!=",
            Op::In => " in ",
            Op::NotIn => " notin ",
            Op::GreaterThan => ">",
            Op::LessThan => "<",
            Op::Exists | Op::DoesNotExist => return Ok(()),
        };
        let mut values = self.values.clone();
        values.sort();
        match self.op {
            Op::In | Op::NotIn => write!(f, "{op}({})", values.join(",")),
            _ => write!(f, "{op}{}", values.join(",")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    Not,
    DoubleEquals,
    Equals,
    GreaterThan,
    Ident,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn literal_token(s: &[u8]) -> Option<Tok> {
    Some(match s {
        b")" => Tok::ClosedPar,
        b"," => Tok::Comma,
        b"!" => Tok::Not,
        b"==" => Tok::DoubleEquals,
        b"=" => Tok::Equals,
        b">" => Tok::GreaterThan,
        b"in" => Tok::In,
        b"<" => Tok::LessThan,
        b"!=" => Tok::NotEquals,
        b"notin" => Tok::NotIn,
        b"(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Byte-wise lexer, like upstream's (a NUL byte reads as end of input).
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        let c = self.s.get(self.pos).copied().unwrap_or(0);
        self.pos = (self.pos + 1).min(self.s.len());
        c
    }

    fn lex(&mut self) -> (Tok, String) {
        let mut c = self.read();
        while is_whitespace(c) {
            c = self.read();
        }
        if c == 0 {
            return (Tok::End, String::new());
        }
        self.pos -= 1;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut buf = Vec::new();
        if is_special(c) {
            let mut last = None;
            loop {
                match self.read() {
                    0 => break,
                    c if is_special(c) => {
                        buf.push(c);
                        if let Some(tok) = literal_token(&buf) {
                            last = Some((tok, text(&buf)));
                        } else if last.is_some() {
                            self.pos -= 1;
                            break;
                        }
                    }
                    _ => {
                        self.pos -= 1;
                        break;
                    }
                }
            }
            last.unwrap_or_else(|| {
                (
                    Tok::Error,
                    format!("error expected: keyword found '{}'", text(&buf)),
                )
            })
        } else {
            loop {
                match self.read() {
                    0 => break,
                    c if is_special(c) || is_whitespace(c) => {
                        self.pos -= 1;
                        break;
                    }
                    c => buf.push(c),
                }
            }
            (literal_token(&buf).unwrap_or(Tok::Ident), text(&buf))
        }
    }
}

/// Parser context: in `Values`, the keywords `in`/`notin` are identifiers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        let (tok, lit) = &self.items[self.pos.min(self.items.len() - 1)];
        let tok = match tok {
            Tok::In | Tok::NotIn if ctx == Ctx::Values => Tok::Ident,
            t => *t,
        };
        (tok, lit.clone())
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let item = self.lookahead(ctx);
        self.pos += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            match self.lookahead(Ctx::Values) {
                (Tok::Ident | Tok::Not, _) => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    match self.consume(Ctx::Values) {
                        (Tok::End, _) => return Ok(reqs),
                        (Tok::Comma, _) => match self.lookahead(Ctx::Values) {
                            (Tok::Ident | Tok::Not, _) => {}
                            (_, lit) => {
                                return Err(format!(
                                    "found '{lit}', expected: identifier after ','"
                                ))
                            }
                        },
                        (_, lit) => {
                            return Err(format!("found '{lit}', expected: ',' or 'end of string'"))
                        }
                    }
                }
                (Tok::End, _) => return Ok(reqs),
                (_, lit) => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.key_and_infer_operator()?;
        if let Some(op) = inferred {
            return new_requirement(&key, op, Vec::new());
        }
        let op = self.operator()?;
        let values = match op {
            Op::In | Op::NotIn => self.values()?,
            _ => self.exact_value()?,
        };
        new_requirement(&key, op, values.into_iter().collect())
    }

    fn key_and_infer_operator(&mut self) -> Result<(String, Option<Op>), String> {
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        let mut op = None;
        if tok == Tok::Not {
            op = Some(Op::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Ident {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        if let Some(err) = validate_label_key(&lit, "<nil>") {
            return Err(err);
        }
        if op.is_none() && matches!(self.lookahead(Ctx::Values).0, Tok::End | Tok::Comma) {
            op = Some(Op::Exists);
        }
        Ok((lit, op))
    }

    fn operator(&mut self) -> Result<Op, String> {
        Ok(match self.consume(Ctx::KeyAndOperator) {
            (Tok::In, _) => Op::In,
            (Tok::Equals, _) => Op::Equals,
            (Tok::DoubleEquals, _) => Op::DoubleEquals,
            (Tok::GreaterThan, _) => Op::GreaterThan,
            (Tok::LessThan, _) => Op::LessThan,
            (Tok::NotIn, _) => Op::NotIn,
            (Tok::NotEquals, _) => Op::NotEquals,
            (_, lit) => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        })
    }

    fn values(&mut self) -> Result<BTreeSet<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        match self.lookahead(Ctx::Values) {
            (Tok::Ident | Tok::Comma, lit) => {
                let set = self.identifiers_list()?;
                if self.consume(Ctx::Values).0 != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            (Tok::ClosedPar, _) => {
                self.consume(Ctx::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            (_, lit) => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut set = BTreeSet::new();
        loop {
            match self.consume(Ctx::Values) {
                (Tok::Ident, lit) => {
                    set.insert(lit);
                    match self.lookahead(Ctx::Values) {
                        (Tok::Comma, _) => continue,
                        (Tok::ClosedPar, _) => return Ok(set),
                        (_, lit) => return Err(format!("found '{lit}', expected: ',' or ')'")),
                    }
                }
                (Tok::Comma, _) => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    match self.lookahead(Ctx::Values).0 {
                        Tok::ClosedPar => {
                            set.insert(String::new());
                            return Ok(set);
                        }
                        Tok::Comma => {
                            self.consume(Ctx::Values);
                            set.insert(String::new());
                        }
                        _ => {}
                    }
                }
                (_, lit) => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        if matches!(self.lookahead(Ctx::Values).0, Tok::End | Tok::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        match self.consume(Ctx::Values) {
            (Tok::Ident, lit) => Ok(BTreeSet::from([lit])),
            (_, lit) => Err(format!("found '{lit}', expected: identifier")),
        }
    }
}

/// A parsed label selector (k8s.io/apimachinery/pkg/labels.Parse): =, ==, !=, in, notin,
/// exists (key), !key, and `>`/`<` with integer values; requirements are kept sorted by key.
/// `Display` renders upstream's `Selector.String()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut lexer = Lexer {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Tok::End;
            items.push(item);
            if end {
                break;
            }
        }
        let mut reqs = Parser { items, pos: 0 }.parse()?;
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { reqs })
    }

    /// From a metav1.LabelSelector JSON object, as `metav1.LabelSelectorAsSelector` does
    /// (an empty object selects everything; `null` selecting nothing is the caller's business).
    pub fn from_json(v: &Value) -> Result<LabelSelector, String> {
        let obj = v.as_object().ok_or("label selector must be an object")?;
        let strings = |v: Option<&Value>, what: &str| -> Result<Vec<String>, String> {
            match v {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("{what} must be strings"))
                    })
                    .collect(),
                Some(_) => Err(format!("{what} must be an array")),
            }
        };
        let mut reqs = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let v = v
                        .as_str()
                        .ok_or_else(|| format!("matchLabels[{k}] must be a string"))?;
                    reqs.push(new_requirement(k, Op::Equals, vec![v.to_owned()])?);
                }
            }
            Some(_) => return Err("matchLabels must be an object".to_owned()),
        }
        for expr in match_expressions(obj.get("matchExpressions"))? {
            let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
            let op = match expr
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(format!(
                        "{} is not a valid label selector operator",
                        go_quote(other)
                    ))
                }
            };
            reqs.push(new_requirement(
                key,
                op,
                strings(expr.get("values"), "values")?,
            )?);
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { reqs })
    }

    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.reqs.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// For selectors made only of `=`/`==` requirements, the key=value pairs they require
    /// (sorted by key); `None` otherwise, or if one key is required to have two values.
    pub fn as_equality_map(&self) -> Option<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        for r in &self.reqs {
            let (Op::Equals | Op::DoubleEquals, [v]) = (r.op, r.values.as_slice()) else {
                return None;
            };
            match out.iter().find(|(k, _)| *k == r.key) {
                Some((_, old)) if old != v => return None,
                Some(_) => {}
                None => out.push((r.key.clone(), v.clone())),
            }
        }
        Some(out)
    }
}

/// `matchExpressions`: absent/null, or an array of objects.
fn match_expressions(v: Option<&Value>) -> Result<Vec<&Map<String, Value>>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|e| {
                e.as_object()
                    .ok_or_else(|| "matchExpressions must be objects".to_owned())
            })
            .collect(),
        Some(_) => Err("matchExpressions must be an array".to_owned()),
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.reqs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Field selectors (k8s.io/apimachinery/pkg/fields/selector.go).
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    not: bool,
}

/// A parsed field selector (k8s.io/apimachinery/pkg/fields.ParseSelector): comma-separated
/// `key=value`, `key==value`, `key!=value`; in values `\\`, `\,` and `\=` are escapes.
/// Terms are kept in upstream's order (sorted by their raw text). `Display` renders
/// upstream's `Selector.String()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// `fields.splitTerms`: split on unescaped commas, keeping escapes in place.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let (mut terms, mut start, mut in_slash) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// `fields.splitTerm`: the first `!=`, `==` or `=` (in that preference at each position).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    term.char_indices().find_map(|(i, _)| {
        ["!=", "==", "="]
            .into_iter()
            .find(|op| term[i..].starts_with(op))
            .map(|op| (&term[..i], op, &term[i + op.len()..]))
    })
}

/// `fields.UnescapeValue`.
fn unescape_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{e}"
                    ))
                }
                None => {
                    return Err("invalid field selector: invalid escape sequence: \\".to_owned())
                }
            },
            // Upstream prints the rune with %v, i.e. as its code point number.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `fields.EscapeValue`.
fn escape_value(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace(',', r"\,")
        .replace('=', r"\=")
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let (field, op, rhs) = split_term(part)
                .ok_or_else(|| format!("invalid selector: '{s}'; can't understand '{part}'"))?;
            let value = unescape_value(rhs)?;
            // ParseSelector's identity Transform turns an empty field with an empty value into Everything.
            if !(field.is_empty() && value.is_empty()) {
                terms.push(FieldTerm {
                    field: field.to_owned(),
                    value,
                    not: op == "!=",
                });
            }
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The field names the selector uses, in order, without duplicates.
    pub fn fields(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.terms {
            if !out.contains(&t.field) {
                out.push(t.field.clone());
            }
        }
        out
    }

    /// If the selector requires `field` to equal one value (e.g. metadata.name=x), that value.
    /// Whether the selector reads nothing outside `metadata` (a PartialObjectMetadata can
    /// be matched against it).
    pub fn is_empty_or_metadata_only(&self) -> bool {
        self.terms.iter().all(|t| t.field.starts_with("metadata."))
    }

    pub fn required_value(&self, field: &str) -> Option<String> {
        self.terms
            .iter()
            .find(|t| !t.not && t.field == field)
            .map(|t| t.value.clone())
    }

    /// Whether an object's field set (as produced by [`object_fields`]) satisfies the
    /// selector; a field missing from the set reads as "".
    pub fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| {
            let v = fields.get(&t.field).map_or("", String::as_str);
            (v == t.value) != t.not
        })
    }

    /// Applies upstream's field label conversion for `group`/`resource` to every term, as the
    /// list/watch handler does before matching (`Selector.Transform(ConvertFieldLabel)`):
    /// the first unsupported field (in term order) fails with upstream's message, and
    /// renamed labels (`spec.host` on pods, `regarding.*` on events.k8s.io) are rewritten to
    /// the names [`object_fields`] produces.
    pub fn convert(&self, group: &str, resource: &str) -> Result<FieldSelector, String> {
        let terms = self
            .terms
            .iter()
            .map(|t| {
                convert_field_label(group, resource, &t.field)
                    .map(|field| FieldTerm { field, ..t.clone() })
            })
            .collect::<Result<_, _>>()?;
        Ok(FieldSelector { terms })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            let op = if t.not { "!=" } else { "=" };
            write!(
                f,
                "{}{}{op}{}",
                if i > 0 { "," } else { "" },
                t.field,
                escape_value(&t.value)
            )?;
        }
        Ok(())
    }
}

/// The upstream error message when a field selector names an unsupported field, for the
/// core/v1 kinds with their own conversion function (pods, nodes, events, secrets, ...):
/// `kubectl get pods --field-selector spec.foo=bar` gets a 400 with exactly this message.
/// Other resources word it differently; see [`convert_field_label`].
pub fn unsupported_field_message(field: &str) -> String {
    format!("field label not supported: {field}")
}

/// Upstream's field label conversion (`Scheme.ConvertFieldLabel`) for a served resource:
/// the field name to match on, or the error text the API server returns in a 400.
/// Kinds without their own function (including custom resources without selectableFields)
/// use `runtime.DefaultMetaV1FieldSelectorConversion`.
pub fn convert_field_label(group: &str, resource: &str, label: &str) -> Result<String, String> {
    const EVENTS_V1: &[(&str, &str)] = &[
        ("reason", "reason"),
        ("regarding.kind", "involvedObject.kind"),
        ("regarding.namespace", "involvedObject.namespace"),
        ("regarding.name", "involvedObject.name"),
        ("regarding.uid", "involvedObject.uid"),
        ("regarding.apiVersion", "involvedObject.apiVersion"),
        (
            "regarding.resourceVersion",
            "involvedObject.resourceVersion",
        ),
        ("regarding.fieldPath", "involvedObject.fieldPath"),
        ("reportingController", "reportingComponent"),
        ("source", "source"),
        ("type", "type"),
        ("metadata.namespace", "metadata.namespace"),
        ("metadata.name", "metadata.name"),
    ];
    let supported: &[&str] = match (group, resource) {
        ("", "pods") if label == "spec.host" => return Ok("spec.nodeName".to_owned()),
        ("", "pods") => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "nodes") => &["metadata.name", "spec.unschedulable"],
        ("", "replicationcontrollers") => {
            &["metadata.name", "metadata.namespace", "status.replicas"]
        }
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ],
        ("", "namespaces") => &["status.phase", "metadata.name"],
        ("", "secrets") => &["type", "metadata.namespace", "metadata.name"],
        ("", "services") => &[
            "metadata.namespace",
            "metadata.name",
            "spec.clusterIP",
            "spec.type",
        ],
        ("certificates.k8s.io", "certificatesigningrequests") => {
            &["metadata.name", "spec.signerName"]
        }
        ("batch", "jobs") => {
            return ["metadata.name", "metadata.namespace", "status.successful"]
                .contains(&label)
                .then(|| label.to_owned())
                .ok_or_else(|| {
                    format!(
                        "field label {} not supported for batchv1.Job",
                        go_quote(label)
                    )
                });
        }
        ("events.k8s.io", "events") => {
            return EVENTS_V1
                .iter()
                .find(|(from, _)| *from == label)
                .map(|(_, to)| (*to).to_owned())
                .ok_or_else(|| unsupported_field_message(label));
        }
        _ => {
            return ["metadata.name", "metadata.namespace"]
                .contains(&label)
                .then(|| label.to_owned())
                .ok_or_else(|| {
                    format!(
                        "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                        go_quote(label)
                    )
                });
        }
    };
    supported
        .contains(&label)
        .then(|| label.to_owned())
        .ok_or_else(|| unsupported_field_message(label))
}

/// The selectable fields of an object of `group`/`resource` (plural), as upstream's
/// per-resource `GetAttrs`/`ToSelectableFields` define them for v1.33 (from the object's
/// versioned JSON; missing values are "" / false / 0 as upstream's zero values).
/// `metadata.namespace` is included when the object carries one (cluster-scoped objects
/// don't; a missing field reads as "" when matching, so the result is the same).
/// Events of either group (core/v1 or events.k8s.io/v1 shape) yield upstream's internal
/// names (`involvedObject.*`, `reportingComponent`, `source`).
pub fn object_fields(group: &str, resource: &str, obj: &Value) -> BTreeMap<String, String> {
    let str_at = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let bool_at = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string()
    };
    let int_at = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string()
    };
    let first_set = |paths: &[&str]| {
        paths
            .iter()
            .map(|p| str_at(p))
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    };

    let mut f = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        f.insert(k.to_owned(), v);
    };
    put("metadata.name", str_at("/metadata/name"));
    if let Some(ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        put("metadata.namespace", ns.to_owned());
    }
    match (group, resource) {
        ("", "pods") => {
            for (k, p) in [
                ("spec.nodeName", "/spec/nodeName"),
                ("spec.restartPolicy", "/spec/restartPolicy"),
                ("spec.schedulerName", "/spec/schedulerName"),
                ("spec.serviceAccountName", "/spec/serviceAccountName"),
                ("status.phase", "/status/phase"),
                ("status.nominatedNodeName", "/status/nominatedNodeName"),
            ] {
                put(k, str_at(p));
            }
            put("spec.hostNetwork", bool_at("/spec/hostNetwork"));
            // Internal PodIPs[0]: v1 podIP wins over podIPs[0] in the v1 -> internal conversion.
            put(
                "status.podIP",
                first_set(&["/status/podIP", "/status/podIPs/0/ip"]),
            );
        }
        ("", "events") | ("events.k8s.io", "events") => {
            let io = if obj.get("involvedObject").is_some() {
                "/involvedObject"
            } else {
                "/regarding"
            };
            for k in [
                "kind",
                "namespace",
                "name",
                "uid",
                "apiVersion",
                "resourceVersion",
                "fieldPath",
            ] {
                put(&format!("involvedObject.{k}"), str_at(&format!("{io}/{k}")));
            }
            put("reason", str_at("/reason"));
            put("type", str_at("/type"));
            let reporting = first_set(&["/reportingComponent", "/reportingController"]);
            let source = first_set(&["/source/component", "/deprecatedSource/component"]);
            put(
                "source",
                if source.is_empty() {
                    reporting.clone()
                } else {
                    source
                },
            );
            put("reportingComponent", reporting);
        }
        ("", "secrets") => put("type", str_at("/type")),
        ("", "namespaces") => {
            put("status.phase", str_at("/status/phase"));
            put("name", str_at("/metadata/name")); // upstream's backward-compatibility "bug"
        }
        ("", "persistentvolumes") => put("name", str_at("/metadata/name")),
        ("", "nodes") => put("spec.unschedulable", bool_at("/spec/unschedulable")),
        ("", "replicationcontrollers") | ("apps", "replicasets") => {
            put("status.replicas", int_at("/status/replicas"))
        }
        ("", "services") => {
            put("spec.clusterIP", str_at("/spec/clusterIP"));
            put("spec.type", str_at("/spec/type"));
        }
        ("batch", "jobs") => put("status.successful", int_at("/status/succeeded")),
        ("certificates.k8s.io", "certificatesigningrequests") => {
            put("spec.signerName", str_at("/spec/signerName"))
        }
        _ => {}
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const QNAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    const DNS_ERR: &str = r"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    type Kv = [(&'static str, &'static str)];

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn check_label_parse(cases: &[(&str, Result<&str, String>)]) {
        for (input, want) in cases {
            let got = LabelSelector::parse(input).map(|s| s.to_string());
            assert_eq!(got, want.clone().map(str::to_owned), "parse {input:?}");
        }
    }

    #[test]
    fn label_parse() {
        let e = |s: &str| Err(s.to_owned());
        check_label_parse(&[
            ("", Ok("")),
            ("x=a", Ok("x=a")),
            (" x == a ", Ok("x==a")),
            ("x!=a,y=b", Ok("x!=a,y=b")),
            ("z=a,x=b", Ok("x=b,z=a")),
            ("x", Ok("x")),
            ("!x", Ok("!x")),
            ("x=", Ok("x=")),
            ("x= ,z= ", Ok("x=,z=")),
            ("x>1,z<5", Ok("x>1,z<5")),
            ("x in (b,a)", Ok("x in (a,b)")),
            ("x notin (a)", Ok("x notin (a)")),
            ("x in (foo,,baz),y,z notin ()", Ok("x in (,baz,foo),y,z notin ()")),
            ("x in (a,)", Ok("x in (,a)")),
            ("x in (,)", Ok("x in ()")),
            ("in in (in,notin)", Ok("in in (in,notin)")),
            ("notin=in", Ok("notin=in")),
            ("example.com/app=web", Ok("example.com/app=web")),
            ("x\t=\na", Ok("x=a")),
            (
                "x=a||y=b",
                Err(format!(r#"unable to parse requirement: values[0][x]: Invalid value: "a||y": {VALUE_ERR}"#)),
            ),
            ("x==a==b", e("found '==', expected: ',' or 'end of string'")),
            ("!x=a", e("found '=', expected: ',' or 'end of string'")),
            ("x=a b", e("found 'b', expected: ',' or 'end of string'")),
            (",", e("found ',', expected: !, identifier, or 'end of string'")),
            ("x,", e("found '', expected: identifier after ','")),
            ("x,=", e("found '=', expected: identifier after ','")),
            ("!", e("unable to parse requirement: found '', expected: identifier")),
            ("!=a", e("found '!=', expected: !, identifier, or 'end of string'")),
            ("!,", e("unable to parse requirement: found ',', expected: identifier")),
            ("x (a)", e("unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt")),
            ("x !a", e("unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt")),
            ("x in a", e("unable to parse requirement: found 'a' expected: '('")),
            ("x in (a", e("unable to parse requirement: found '', expected: ',' or ')'")),
            ("x in (a b)", e("unable to parse requirement: found 'b', expected: ',' or ')'")),
            ("x in (=)", e("unable to parse requirement: found '=', expected: ',', ')' or identifier")),
            ("x in (a,=)", e("unable to parse requirement: found '=', expected: ',', or identifier")),
            ("x=(", e("unable to parse requirement: found '(', expected: identifier")),
            ("x<a", e(r#"unable to parse requirement: values[0]: Invalid value: "a": for 'Gt', 'Lt' operators, the value must be an integer"#)),
            ("x>", e(r#"unable to parse requirement: values[0]: Invalid value: "": for 'Gt', 'Lt' operators, the value must be an integer"#)),
            ("x>-1", Err(format!(r#"unable to parse requirement: values[0][x]: Invalid value: "-1": {VALUE_ERR}"#))),
            (
                "x>a-",
                Err(format!(
                    r#"unable to parse requirement: [values[0]: Invalid value: "a-": for 'Gt', 'Lt' operators, the value must be an integer, values[0][x]: Invalid value: "a-": {VALUE_ERR}]"#
                )),
            ),
            ("x=a@b", Err(format!(r#"unable to parse requirement: values[0][x]: Invalid value: "a@b": {VALUE_ERR}"#))),
            ("x=\"a\"", Err(format!(r#"unable to parse requirement: values[0][x]: Invalid value: "\"a\"": {VALUE_ERR}"#))),
            (
                &format!("x={}", "a".repeat(64)),
                Err(format!(
                    r#"unable to parse requirement: values[0][x]: Invalid value: "{}": must be no more than 63 characters"#,
                    "a".repeat(64)
                )),
            ),
            ("-x", Err(format!(r#"unable to parse requirement: <nil>: Invalid value: "-x": name part {QNAME_ERR}"#))),
            (
                "a/b/c=d",
                Err(format!(
                    r#"unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name {QNAME_ERR} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"#
                )),
            ),
            ("Foo.com/x", Err(format!(r#"unable to parse requirement: <nil>: Invalid value: "Foo.com/x": prefix part {DNS_ERR}"#))),
            (
                "/x",
                Err(r#"unable to parse requirement: <nil>: Invalid value: "/x": prefix part must be non-empty"#.to_owned()),
            ),
            (
                "a/",
                Err(format!(
                    r#"unable to parse requirement: <nil>: Invalid value: "a/": name part must be non-empty; name part {QNAME_ERR}"#
                )),
            ),
        ]);
    }

    fn check_label_matches(cases: &[(&str, Value, bool)]) {
        for (sel, ls, want) in cases {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(&labels(ls.clone())), *want, "{sel} vs {ls}");
        }
    }

    #[test]
    fn label_matches() {
        check_label_matches(&[
            ("", json!({"x": "y"}), true),
            ("x=y", json!({"x": "y"}), true),
            ("x==y", json!({"x": "y"}), true),
            ("x=y", json!({"x": "z"}), false),
            ("x=y", json!({}), false),
            ("x=", json!({"x": ""}), true),
            ("x!=y", json!({"x": "z"}), true),
            ("x!=y", json!({"x": "y"}), false),
            ("x!=y", json!({}), true),
            ("x in (a,b)", json!({"x": "b"}), true),
            ("x in (a,b)", json!({"x": "c"}), false),
            ("x in (a,b)", json!({}), false),
            ("x in (a,)", json!({"x": ""}), true),
            ("x notin (a,b)", json!({"x": "c"}), true),
            ("x notin (a,b)", json!({"x": "a"}), false),
            ("x notin (a,b)", json!({}), true),
            ("x", json!({"x": ""}), true),
            ("x", json!({"y": "1"}), false),
            ("!x", json!({"y": "1"}), true),
            ("!x", json!({"x": "1"}), false),
            ("x>1", json!({"x": "2"}), true),
            ("x>1", json!({"x": "1"}), false),
            ("x>1", json!({"x": "-5"}), false),
            ("x>1", json!({"x": "abc"}), false),
            ("x>1", json!({}), false),
            ("x<1", json!({"x": "-5"}), true),
            ("x<1", json!({"x": "1"}), false),
            ("x=y,z=w", json!({"x": "y", "z": "w"}), true),
            ("x=y,z=w", json!({"x": "y", "z": "v"}), false),
            ("notin=in", json!({"notin": "in"}), true),
        ]);
    }

    fn check_from_json(cases: &[(Value, Result<&str, String>)]) {
        for (v, want) in cases {
            let got = LabelSelector::from_json(v).map(|s| s.to_string());
            assert_eq!(got, want.clone().map(str::to_owned), "from_json {v}");
        }
    }

    #[test]
    fn label_from_json() {
        check_from_json(&[
            (json!({}), Ok("")),
            (json!({"matchLabels": null, "matchExpressions": null}), Ok("")),
            (json!({"matchLabels": {"b": "2", "a": "1"}}), Ok("a=1,b=2")),
            (
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["b", "a"]},
                    {"key": "env", "operator": "NotIn", "values": ["prod"]},
                    {"key": "canary", "operator": "Exists"},
                    {"key": "legacy", "operator": "DoesNotExist", "values": []}]}),
                Ok("app=web,canary,env notin (prod),!legacy,tier in (a,b)"),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
                Err(r#""Gt" is not a valid label selector operator"#.to_owned()),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                Err("values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".to_owned()),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]}),
                Err(r#"values: Invalid value: []string{"x", "y"}: values set must be empty for exists and does not exist"#.to_owned()),
            ),
            (
                json!({"matchLabels": {"a b": "c d"}}),
                Err(format!(
                    r#"[key: Invalid value: "a b": name part {QNAME_ERR}, values[0][a b]: Invalid value: "c d": {VALUE_ERR}]"#
                )),
            ),
        ]);
        let s = LabelSelector::from_json(&json!({"matchLabels": {"a": "1"}})).unwrap();
        assert!(s.matches(&labels(json!({"a": "1", "b": "2"}))));
        assert!(LabelSelector::from_json(&json!({})).unwrap().is_empty());
    }

    fn check_equality_map(cases: &[(&str, Option<&Kv>)]) {
        for (sel, want) in cases {
            let want = want.as_ref().map(|v| {
                v.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            });
            assert_eq!(
                LabelSelector::parse(sel).unwrap().as_equality_map(),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn label_equality_map() {
        check_equality_map(&[
            ("", Some(&[])),
            ("b=2,a==1", Some(&[("a", "1"), ("b", "2")])),
            ("a=1,a=1", Some(&[("a", "1")])),
            ("a=1,a=2", None),
            ("a!=1", None),
            ("a in (1)", None),
            ("a", None),
            ("a=1,!b", None),
        ]);
    }

    fn check_field_parse(cases: &[(&str, Result<&str, String>)]) {
        for (input, want) in cases {
            let got = FieldSelector::parse(input).map(|s| s.to_string());
            assert_eq!(got, want.clone().map(str::to_owned), "parse {input:?}");
        }
    }

    #[test]
    fn field_parse() {
        let e = |s: &str| Err(s.to_owned());
        check_field_parse(&[
            ("", Ok("")),
            ("=", Ok("")),
            (",,", Ok("")),
            ("x=a", Ok("x=a")),
            ("x==a", Ok("x=a")),
            ("x!=a", Ok("x!=a")),
            ("y=b,x=a", Ok("x=a,y=b")),
            ("x=", Ok("x=")),
            ("=a", Ok("=a")),
            (r"x=a\,b", Ok(r"x=a\,b")),
            (r"x=a\=b,y=c\\d", Ok(r"x=a\=b,y=c\\d")),
            ("x=a b", Ok("x=a b")),
            ("x", e("invalid selector: 'x'; can't understand 'x'")),
            (
                "x=a,y",
                e("invalid selector: 'x=a,y'; can't understand 'y'"),
            ),
            (
                "x in (a)",
                e("invalid selector: 'x in (a)'; can't understand 'x in (a)'"),
            ),
            (
                "x=a=b",
                e("invalid field selector: unescaped character in value: 61"),
            ),
            (
                "x=!=b",
                e("invalid field selector: unescaped character in value: 61"),
            ),
            (
                r"x=a\!",
                e(r"invalid field selector: invalid escape sequence: \!"),
            ),
            (
                r"x=a\",
                e(r"invalid field selector: invalid escape sequence: \"),
            ),
            (
                r"x=\a",
                e(r"invalid field selector: invalid escape sequence: \a"),
            ),
        ]);
        let s = FieldSelector::parse(r"x=a\,b").unwrap();
        assert_eq!(s.required_value("x").as_deref(), Some("a,b"));
        let s = FieldSelector::parse(r"x=a\\,y=b").unwrap();
        assert_eq!(s.required_value("x").as_deref(), Some(r"a\"));
        assert_eq!(s.fields(), ["x", "y"]);
    }

    fn check_field_matches(cases: &[(&str, &Kv, bool)]) {
        for (sel, fields, want) in cases {
            let fields = fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                FieldSelector::parse(sel).unwrap().matches(&fields),
                *want,
                "{sel} vs {fields:?}"
            );
        }
    }

    #[test]
    fn field_matches() {
        check_field_matches(&[
            ("", &[("a", "b")], true),
            ("metadata.name=x", &[("metadata.name", "x")], true),
            ("metadata.name==x", &[("metadata.name", "y")], false),
            ("metadata.name!=x", &[("metadata.name", "y")], true),
            ("metadata.name!=x", &[("metadata.name", "x")], false),
            ("spec.nodeName!=x", &[], true),
            ("spec.nodeName!=", &[], false),
            ("spec.nodeName=", &[], true),
            ("spec.nodeName=x", &[], false),
            ("a=1,b!=2", &[("a", "1"), ("b", "3")], true),
            ("a=1,b!=2", &[("a", "1"), ("b", "2")], false),
            (r"a=x\,y", &[("a", "x,y")], true),
        ]);
    }

    fn check_required(cases: &[(&str, &str, Option<&str>)]) {
        for (sel, field, want) in cases {
            let got = FieldSelector::parse(sel).unwrap().required_value(field);
            assert_eq!(got.as_deref(), *want, "{sel} / {field}");
        }
    }

    #[test]
    fn field_required_value_and_fields() {
        check_required(&[
            ("metadata.name=x", "metadata.name", Some("x")),
            (
                "metadata.name==x,metadata.namespace=y",
                "metadata.namespace",
                Some("y"),
            ),
            ("metadata.name!=x", "metadata.name", None),
            ("metadata.name=x", "spec.nodeName", None),
            ("", "metadata.name", None),
        ]);
        let s = FieldSelector::parse("b=1,a!=2,b!=3").unwrap();
        assert_eq!(s.fields(), ["a", "b"]);
        assert!(!s.is_empty());
        assert!(FieldSelector::parse("").unwrap().is_empty());
    }

    fn check_convert(cases: &[(&str, &str, &str, Result<&str, String>)]) {
        for (group, resource, sel, want) in cases {
            let got = FieldSelector::parse(sel)
                .unwrap()
                .convert(group, resource)
                .map(|s| s.to_string());
            assert_eq!(
                got,
                want.clone().map(str::to_owned),
                "{group}/{resource} {sel}"
            );
        }
    }

    #[test]
    fn field_convert() {
        let e = |s: &str| Err(s.to_owned());
        check_convert(&[
            (
                "",
                "pods",
                "spec.nodeName=n,status.phase=Running",
                Ok("spec.nodeName=n,status.phase=Running"),
            ),
            ("", "pods", "spec.host=n", Ok("spec.nodeName=n")),
            (
                "",
                "pods",
                "status.podIPs=1.2.3.4",
                Ok("status.podIPs=1.2.3.4"),
            ),
            (
                "",
                "pods",
                "spec.foo=bar",
                e("field label not supported: spec.foo"),
            ),
            ("", "pods", "z=1,a=2", e("field label not supported: a")),
            (
                "",
                "nodes",
                "metadata.namespace=x",
                e("field label not supported: metadata.namespace"),
            ),
            (
                "",
                "nodes",
                "spec.unschedulable=false",
                Ok("spec.unschedulable=false"),
            ),
            (
                "",
                "namespaces",
                "status.phase=Active",
                Ok("status.phase=Active"),
            ),
            ("", "secrets", "type=Opaque", Ok("type=Opaque")),
            (
                "",
                "services",
                "spec.type=NodePort",
                Ok("spec.type=NodePort"),
            ),
            (
                "",
                "replicationcontrollers",
                "status.replicas=1",
                Ok("status.replicas=1"),
            ),
            (
                "",
                "events",
                "involvedObject.name=p,source=kubelet",
                Ok("involvedObject.name=p,source=kubelet"),
            ),
            (
                "",
                "events",
                "regarding.name=p",
                e("field label not supported: regarding.name"),
            ),
            (
                "events.k8s.io",
                "events",
                "regarding.name=p",
                Ok("involvedObject.name=p"),
            ),
            (
                "events.k8s.io",
                "events",
                "reportingController=k",
                Ok("reportingComponent=k"),
            ),
            (
                "events.k8s.io",
                "events",
                "involvedObject.name=p",
                e("field label not supported: involvedObject.name"),
            ),
            (
                "batch",
                "jobs",
                "status.successful=1",
                Ok("status.successful=1"),
            ),
            (
                "batch",
                "jobs",
                "status.succeeded=1",
                e(r#"field label "status.succeeded" not supported for batchv1.Job"#),
            ),
            ("", "configmaps", "metadata.name=a", Ok("metadata.name=a")),
            (
                "apps",
                "deployments",
                "spec.replicas=1",
                e(
                    r#""spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace""#,
                ),
            ),
        ]);
        assert_eq!(
            unsupported_field_message("spec.foo"),
            "field label not supported: spec.foo"
        );
    }

    fn check_object_fields(cases: &[(&str, &str, Value, &Kv)]) {
        for (group, resource, obj, want) in cases {
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                object_fields(group, resource, obj),
                want,
                "{group}/{resource}"
            );
        }
    }

    #[test]
    fn object_fields_per_resource() {
        check_object_fields(&[
            (
                "",
                "pods",
                json!({"metadata": {"name": "p", "namespace": "ns"},
                       "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                                "serviceAccountName": "default", "hostNetwork": true},
                       "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}}),
                &[
                    ("metadata.name", "p"),
                    ("metadata.namespace", "ns"),
                    ("spec.nodeName", "n1"),
                    ("spec.restartPolicy", "Always"),
                    ("spec.schedulerName", "default-scheduler"),
                    ("spec.serviceAccountName", "default"),
                    ("spec.hostNetwork", "true"),
                    ("status.phase", "Running"),
                    ("status.podIP", "10.0.0.1"),
                    ("status.nominatedNodeName", ""),
                ],
            ),
            (
                "",
                "pods",
                json!({"metadata": {"name": "q", "namespace": "ns"}, "spec": {}, "status": {"podIP": "10.0.0.9"}}),
                &[
                    ("metadata.name", "q"),
                    ("metadata.namespace", "ns"),
                    ("spec.nodeName", ""),
                    ("spec.restartPolicy", ""),
                    ("spec.schedulerName", ""),
                    ("spec.serviceAccountName", ""),
                    ("spec.hostNetwork", "false"),
                    ("status.phase", ""),
                    ("status.podIP", "10.0.0.9"),
                    ("status.nominatedNodeName", ""),
                ],
            ),
            (
                "",
                "events",
                json!({"metadata": {"name": "e", "namespace": "ns"},
                       "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "p", "uid": "u1",
                                          "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{c}"},
                       "reason": "Started", "type": "Normal", "source": {"component": "kubelet", "host": "n1"},
                       "reportingComponent": "kubelet"}),
                &[
                    ("metadata.name", "e"),
                    ("metadata.namespace", "ns"),
                    ("involvedObject.kind", "Pod"),
                    ("involvedObject.namespace", "ns"),
                    ("involvedObject.name", "p"),
                    ("involvedObject.uid", "u1"),
                    ("involvedObject.apiVersion", "v1"),
                    ("involvedObject.resourceVersion", "7"),
                    ("involvedObject.fieldPath", "spec.containers{c}"),
                    ("reason", "Started"),
                    ("type", "Normal"),
                    ("source", "kubelet"),
                    ("reportingComponent", "kubelet"),
                ],
            ),
            (
                "events.k8s.io",
                "events",
                json!({"metadata": {"name": "e", "namespace": "ns"},
                       "regarding": {"kind": "Node", "name": "n1"},
                       "reason": "Ready", "type": "Normal", "reportingController": "sched"}),
                &[
                    ("metadata.name", "e"),
                    ("metadata.namespace", "ns"),
                    ("involvedObject.kind", "Node"),
                    ("involvedObject.namespace", ""),
                    ("involvedObject.name", "n1"),
                    ("involvedObject.uid", ""),
                    ("involvedObject.apiVersion", ""),
                    ("involvedObject.resourceVersion", ""),
                    ("involvedObject.fieldPath", ""),
                    ("reason", "Ready"),
                    ("type", "Normal"),
                    ("source", "sched"),
                    ("reportingComponent", "sched"),
                ],
            ),
            (
                "",
                "secrets",
                json!({"metadata": {"name": "s", "namespace": "ns"}, "type": "kubernetes.io/tls"}),
                &[
                    ("metadata.name", "s"),
                    ("metadata.namespace", "ns"),
                    ("type", "kubernetes.io/tls"),
                ],
            ),
            (
                "",
                "nodes",
                json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}}),
                &[("metadata.name", "n1"), ("spec.unschedulable", "true")],
            ),
            (
                "",
                "nodes",
                json!({"metadata": {"name": "n2"}}),
                &[("metadata.name", "n2"), ("spec.unschedulable", "false")],
            ),
            (
                "",
                "namespaces",
                json!({"metadata": {"name": "ns"}, "status": {"phase": "Active"}}),
                &[
                    ("metadata.name", "ns"),
                    ("name", "ns"),
                    ("status.phase", "Active"),
                ],
            ),
            (
                "",
                "replicationcontrollers",
                json!({"metadata": {"name": "rc", "namespace": "ns"}, "status": {"replicas": 3}}),
                &[
                    ("metadata.name", "rc"),
                    ("metadata.namespace", "ns"),
                    ("status.replicas", "3"),
                ],
            ),
            (
                "",
                "services",
                json!({"metadata": {"name": "svc", "namespace": "ns"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1"}}),
                &[
                    ("metadata.name", "svc"),
                    ("metadata.namespace", "ns"),
                    ("spec.clusterIP", "10.96.0.1"),
                    ("spec.type", "ClusterIP"),
                ],
            ),
            (
                "batch",
                "jobs",
                json!({"metadata": {"name": "j", "namespace": "ns"}, "status": {"succeeded": 1}}),
                &[
                    ("metadata.name", "j"),
                    ("metadata.namespace", "ns"),
                    ("status.successful", "1"),
                ],
            ),
            (
                "",
                "configmaps",
                json!({"metadata": {"name": "cm", "namespace": "ns"}, "data": {"a": "b"}}),
                &[("metadata.name", "cm"), ("metadata.namespace", "ns")],
            ),
        ]);
    }

    #[test]
    fn field_selector_end_to_end() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}});
        let fields = object_fields("", "pods", &pod);
        let sel = |s: &str| {
            FieldSelector::parse(s)
                .unwrap()
                .convert("", "pods")
                .unwrap()
        };
        assert!(sel("spec.host=n1").matches(&fields));
        assert!(sel("spec.nodeName!=n2,metadata.namespace=ns").matches(&fields));
        assert!(!sel("status.podIPs=10.0.0.1").matches(&fields));
        assert!(sel("status.podIPs!=10.0.0.1").matches(&fields));
    }
}
