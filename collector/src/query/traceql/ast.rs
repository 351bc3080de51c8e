//! The TraceQL subset this collector evaluates, as a tree (`parser` builds it, `eval` runs it, `plan`
//! derives what the store's search entries can rule out).

use regex_lite::Regex;

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `span.x`
    Span,
    /// `resource.x`
    Resource,
    /// `.x`: the span's attribute, else the resource's.
    Any,
}

/// Intrinsic fields: `name`, `span:name`, `trace:duration`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
    RootName,
    RootService,
    TraceDuration,
    TraceId,
    SpanId,
    ParentId,
}

impl Intrinsic {
    /// The name it has in results and tag lists.
    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Status => "status",
            Self::StatusMessage => "statusMessage",
            Self::Kind => "kind",
            Self::Duration => "duration",
            Self::RootName => "rootName",
            Self::RootService => "rootServiceName",
            Self::TraceDuration => "traceDuration",
            Self::TraceId => "trace:id",
            Self::SpanId => "span:id",
            Self::ParentId => "span:parentID",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Intrinsic(Intrinsic),
    Attribute { scope: Scope, name: String },
}

impl Field {
    /// How the field is shown as a result attribute (`by(...)`, `select(...)`, matched conditions).
    pub fn label(&self) -> String {
        match self {
            Field::Intrinsic(i) => i.name().to_string(),
            Field::Attribute { scope, name } => match scope {
                Scope::Span => format!("span.{name}"),
                Scope::Resource => format!("resource.{name}"),
                Scope::Any => format!(".{name}"),
            },
        }
    }
}

/// OTLP status codes as TraceQL names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unset,
    Ok,
    Error,
}

/// OTLP span kinds as TraceQL names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// A literal, and every value a field can have.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(Status),
    Kind(Kind),
    Array(Vec<Value>),
    Nil,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Re,
    Nre,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Field(Field),
    Static(Value),
}

/// A condition on one span (inside `{ }`).
#[derive(Debug, Clone)]
pub enum FieldExpr {
    And(Box<FieldExpr>, Box<FieldExpr>),
    Or(Box<FieldExpr>, Box<FieldExpr>),
    Not(Box<FieldExpr>),
    Compare {
        left: Operand,
        op: CmpOp,
        right: Operand,
        /// The fully anchored pattern, for `=~` and `!~`.
        regex: Option<Regex>,
    },
    /// A field or literal used as a boolean (`{ true }`, `{ span.cached }`).
    Truthy(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpansetOp {
    /// `&&`: both sides found spans.
    And,
    /// `||`: either side found spans.
    Or,
    /// `>`: right spans whose parent matches the left.
    Child,
    /// `>>`: right spans with an ancestor matching the left.
    Descendant,
    /// `<`: right spans that are the parent of a left span.
    Parent,
    /// `<<`: right spans that are an ancestor of a left span.
    Ancestor,
    /// `~`: right spans with a sibling matching the left.
    Sibling,
}

#[derive(Debug, Clone)]
pub enum SpansetExpr {
    /// `{ ... }`; `{ }` (no condition) selects every span.
    Filter(Option<FieldExpr>),
    Op(SpansetOp, Box<SpansetExpr>, Box<SpansetExpr>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    Count,
    Avg(Field),
    Min(Field),
    Max(Field),
    Sum(Field),
}

/// One stage of the pipeline.
#[derive(Debug, Clone)]
pub enum Stage {
    Spanset(SpansetExpr),
    /// `count() > 2`, `avg(duration) >= 20ms`.
    Scalar {
        aggregate: Aggregate,
        op: CmpOp,
        value: Value,
    },
    By(Field),
    Select(Vec<Field>),
    Coalesce,
}

/// A whole query: its first stage is always a spanset expression (`count() > 2` alone means
/// `{ } | count() > 2`, as in Tempo).
#[derive(Debug, Clone)]
pub struct Query {
    pub stages: Vec<Stage>,
}
