//! `fields` and `expand` on the reads of people and activities (by id and in lists):
//! sparse fieldsets and embedded related resources, so that a mobile client gets the JSON
//! it shows and nothing else.
//!
//! The rules (the spec states them on each parameter):
//! - **`fields=a,b`** (names separated by commas, no spaces) keeps only those properties.
//!   `id` and `version` always come: what names the row, and the ETag value (`"<version>"`)
//!   a later `If-Match` needs. In sync mode (`sort=updated_at`) `updated_at` and
//!   `deleted_at` come too: what a client needs to resume with `updated_after` and to see a
//!   tombstone as one. Naming `id` and the others is allowed.
//! - **`expand=x`** embeds the related resource `x` as a property of that name, read in the
//!   same statement (one scoped `LEFT JOIN`: never a query per row); `null` when there is
//!   none or it is deleted. It needs the embedded resource's read scope as well (403
//!   otherwise): a credential for people alone does not read accounts through them.
//! - A name the resource does not have, an empty name, or either parameter given twice:
//!   422 `validation-failed`, one error per offending name (`field` is the parameter).
//! - **Media type.** Without either parameter an answer is the full representation,
//!   `application/json`, as before. With one, it is [`PARTIAL_JSON`], whose schema
//!   (`PersonPartial`, `ActivityPartial`) requires only `id` and `version` and declares the
//!   embeddable properties: partial objects never claim properties they lack, and
//!   generators that only read `application/json` (progenitor) keep the full types.
//! - **ETag.** A shaped read by id carries a weak ETag, `W/"<version>-<fields>-<expand>"`
//!   plus the version of each embedded resource (`0` for none), so it never equals the
//!   full representation's `"<version>"` (an `If-None-Match` of one is never a 304 for the
//!   other) and changes when an embedded resource does. Weak: it names a view, not the
//!   row, so `If-Match` does not take it (send `"<version>"`).
//! - **Price.** Unchanged: a shaped read costs what the plain one does, and an expansion is
//!   one join, far cheaper than the read per row it replaces.
//! - **Cursors** are not bound to `fields` or `expand`: they do not change which rows a
//!   walk visits, so a client may change its shape from one page to the next.

use std::borrow::Cow;
use std::marker::PhantomData;

use poem::http::StatusCode;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{MaybeUndefined, ParseFromParameter, ParseResult, Type};
use poem_openapi::{ApiResponse, ResponseContent};
use serde::Serialize;

use crate::auth::{BearerAuth, Scope};
use crate::http::JsonOut;
use crate::problem::{FieldProblem, Problem, kind};

/// The media type of an answer shaped by `fields` or `expand`.
pub const PARTIAL_JSON: &str = "application/vnd.tenantry.partial+json";

/// What `fields` and `expand` may name on one resource.
pub trait Vocabulary: Send + Sync + 'static {
    /// The resource, as error messages name it ("person").
    const NOUN: &'static str;
    /// Every property of the full representation, in its order (at most 64).
    const FIELDS: &'static [&'static str];
    /// What can be embedded, each with the scope reading it needs.
    const EXPAND: &'static [(&'static str, Scope)];
}

/// The bit of `name` among `names`; a name that is not there fails the build (it is only
/// used in constants).
pub const fn bit(names: &[&str], name: &str) -> u64 {
    let mut i = 0;
    while i < names.len() {
        let (a, b) = (names[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return 1 << i;
            }
        }
        i += 1;
    }
    panic!("not a name of this vocabulary")
}

/// The names of the [`Vocabulary::EXPAND`] entries.
fn expansions<V: Vocabulary>() -> impl Iterator<Item = &'static str> {
    V::EXPAND.iter().map(|(name, _)| *name)
}

/// Which parameter a [`Names`] is.
pub trait Param: Send + Sync + 'static {
    /// Its name in the query string.
    const NAME: &'static str;
    /// What error messages call the names it holds.
    const WHAT: &'static str;
    /// The error code of a name it may not hold.
    const UNKNOWN: &'static str;
    /// The names it may hold on `V`.
    fn names<V: Vocabulary>() -> Vec<&'static str>;
}

/// `fields`.
#[derive(Debug)]
pub struct FieldsParam;
impl Param for FieldsParam {
    const NAME: &'static str = "fields";
    const WHAT: &'static str = "fields";
    const UNKNOWN: &'static str = "unknown_field";
    fn names<V: Vocabulary>() -> Vec<&'static str> {
        V::FIELDS.to_vec()
    }
}

/// `expand`.
#[derive(Debug)]
pub struct ExpandParam;
impl Param for ExpandParam {
    const NAME: &'static str = "expand";
    const WHAT: &'static str = "expansions";
    const UNKNOWN: &'static str = "unknown_expansion";
    fn names<V: Vocabulary>() -> Vec<&'static str> {
        expansions::<V>().collect()
    }
}

/// The values of a `fields` or `expand` query parameter as sent, checked by
/// [`Shape::parse`] so that a bad name is a 422 naming it (poem-openapi's own parse errors
/// are 400s). The spec declares the parameter a string whose pattern lists the names.
pub struct Names<V, P> {
    values: Vec<String>,
    _of: PhantomData<fn() -> (V, P)>,
}

/// The `fields` parameter of `V`'s reads.
pub type Fields<V> = Names<V, FieldsParam>;
/// The `expand` parameter of `V`'s reads.
pub type Expand<V> = Names<V, ExpandParam>;

impl<V, P> std::fmt::Debug for Names<V, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Names").field(&self.values).finish()
    }
}

impl<V: Vocabulary, P: Param> Type for Names<V, P> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let one = format!("(?:{})", P::names::<V>().join("|"));
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(format!("^{one}(?:,{one})*$")),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<V: Vocabulary, P: Param> ParseFromParameter for Names<V, P> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::parse_from_parameters([value])
    }

    fn parse_from_parameters<I: IntoIterator<Item = A>, A: AsRef<str>>(
        iter: I,
    ) -> ParseResult<Self> {
        Ok(Self {
            values: iter.into_iter().map(|v| v.as_ref().to_owned()).collect(),
            _of: PhantomData,
        })
    }
}

impl<V: Vocabulary, P: Param> Names<V, P> {
    /// The bits of the names given, or the problems of those that are not names of `V`.
    fn bits(&self, errors: &mut Vec<FieldProblem>) -> u64 {
        let known = P::names::<V>();
        if self.values.len() > 1 {
            errors.push(FieldProblem::new(
                P::NAME,
                "repeated",
                format!("give `{}` once, with names separated by commas", P::NAME),
            ));
        }
        let mut bits = 0;
        for name in self.values.iter().flat_map(|v| v.split(',')) {
            match known.iter().position(|k| *k == name) {
                Some(i) => bits |= 1 << i,
                None if name.is_empty() => errors.push(FieldProblem::new(
                    P::NAME,
                    "empty_name",
                    "an empty name: separate names with single commas, without spaces",
                )),
                None => errors.push(FieldProblem::new(
                    P::NAME,
                    P::UNKNOWN,
                    format!(
                        "`{name}` is not one of a {}'s {}: {}",
                        V::NOUN,
                        P::WHAT,
                        known.join(", ")
                    ),
                )),
            }
        }
        bits
    }
}

/// What a read asked for with `fields` and `expand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Bits of the kept properties (all of them without `fields`).
    fields: u64,
    /// Whether `fields` narrowed them.
    sparse: bool,
    /// Bits of the expansions.
    expand: u64,
}

impl Shape {
    /// The shape of a read of `V` with these parameters, for the credential of `auth`.
    ///
    /// Called before the operation's prologue takes the charge over: a request refused
    /// here costs what a request with bad parameters costs ([`crate::limits`], rule 3).
    ///
    /// # Errors
    /// 422 naming each bad name (see the module docs); 403 when an expansion needs a scope
    /// the credential lacks.
    pub fn parse<V: Vocabulary>(
        auth: &BearerAuth,
        fields: Option<&Fields<V>>,
        expand: Option<&Expand<V>>,
    ) -> Result<Self, Problem> {
        let mut errors = Vec::new();
        let all = (1_u64 << V::FIELDS.len()) - 1;
        let shape = Self {
            fields: fields.map_or(all, |f| f.bits(&mut errors)),
            sparse: fields.is_some(),
            expand: expand.map_or(0, |e| e.bits(&mut errors)),
        };
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        for (i, (name, scope)) in V::EXPAND.iter().enumerate() {
            if shape.expand & (1 << i) != 0 && auth.require(*scope).is_err() {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    kind::INSUFFICIENT_SCOPE,
                    format!(
                        "`expand={name}` also requires the `{}` scope",
                        scope.as_str()
                    ),
                ));
            }
        }
        Ok(shape)
    }

    /// The shape of `fields=<fields>&expand=<expand>` on `V`, for names known to be good
    /// (examples, tests); others are ignored.
    pub fn of<V: Vocabulary>(fields: &[&str], expand: &[&str]) -> Self {
        let bits = |known: &mut dyn Iterator<Item = &'static str>, names: &[&str]| {
            known
                .enumerate()
                .filter(|(_, k)| names.contains(k))
                .fold(0, |bits, (i, _)| bits | 1 << i)
        };
        Self {
            fields: bits(&mut V::FIELDS.iter().copied(), fields),
            sparse: true,
            expand: bits(&mut expansions::<V>(), expand),
        }
    }

    /// Whether neither parameter was given: the full representation.
    pub fn is_full(&self) -> bool {
        !self.sparse && self.expand == 0
    }

    /// Whether the property of `bit` (see [`bit`]) is kept.
    pub fn keeps(&self, bit: u64) -> bool {
        self.fields & bit != 0
    }

    /// Whether the expansion of `bit` (see [`bit`]) was asked for.
    pub fn expands(&self, bit: u64) -> bool {
        self.expand & bit != 0
    }

    /// The same shape keeping the properties of `bits` too.
    #[must_use]
    pub fn keeping(self, bits: u64) -> Self {
        Self {
            fields: self.fields | bits,
            ..self
        }
    }

    /// The weak ETag of a shaped read of a row at `version`, with the versions of what it
    /// embeds (`None`: nothing to embed). See the module docs.
    pub fn etag(&self, version: i64, embedded: &[Option<i64>]) -> String {
        let mut tag = format!("W/\"{version}-{:x}-{:x}", self.fields, self.expand);
        for v in embedded {
            tag.push_str(&format!("-{}", v.unwrap_or(0)));
        }
        tag.push('"');
        tag
    }
}

/// A nullable property `fields` may leave out: its value or `null` when `keep`, absent
/// otherwise.
pub fn kept_nullable<T>(keep: bool, value: Option<T>) -> MaybeUndefined<T> {
    match (keep, value) {
        (false, _) => MaybeUndefined::Undefined,
        (true, None) => MaybeUndefined::Null,
        (true, Some(value)) => MaybeUndefined::Value(value),
    }
}

/// The body of a read: the full representation, or the one `fields`/`expand` shaped.
#[derive(ResponseContent)]
pub enum Representation<F: Type + Serialize, P: Type + Serialize> {
    /// Without `fields` and `expand`: every property.
    Full(JsonOut<F>),
    /// With `fields` or `expand`: `id` and `version`, the properties asked for, and the
    /// expansions.
    #[oai(content_type = "application/vnd.tenantry.partial+json")]
    Partial(JsonOut<P>),
}

/// A read by id that `fields` and `expand` can shape.
#[derive(ApiResponse)]
pub enum FetchedShaped<F: Type + Serialize, P: Type + Serialize> {
    /// The resource: `application/json` in full, or shaped by `fields`/`expand` as
    /// `application/vnd.tenantry.partial+json`.
    #[oai(status = 200)]
    Ok(
        Representation<F, P>,
        /// `"<version>"` for the full representation (for `If-Match` / `If-None-Match`);
        /// a weak ETag of its own for a shaped one (for `If-None-Match` only).
        #[oai(header = "ETag")]
        String,
    ),
    /// Unchanged since the ETag named in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(
        /// The current ETag.
        #[oai(header = "ETag")]
        String,
    ),
}

impl<F: Type + Serialize, P: Type + Serialize> FetchedShaped<F, P> {
    /// 200 with `body` and `etag`, or 304 when `if_none_match` names `etag`.
    pub fn new(body: Representation<F, P>, etag: String, if_none_match: Option<&str>) -> Self {
        if crate::http::none_match_tag(if_none_match, &etag) {
            Self::NotModified(etag)
        } else {
            Self::Ok(body, etag)
        }
    }

    /// Whether this is the 304 (which costs nothing).
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Self::NotModified(_))
    }
}

/// A list page that `fields` and `expand` can shape.
#[derive(ApiResponse)]
pub enum ListedShaped<F: Type + Serialize, P: Type + Serialize> {
    /// The page: `application/json` in full, or its items shaped by `fields`/`expand` as
    /// `application/vnd.tenantry.partial+json`.
    #[oai(status = 200)]
    Ok(
        Representation<F, P>,
        /// `<url>; rel="next"` when more items follow.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pets;
    impl Vocabulary for Pets {
        const NOUN: &'static str = "pet";
        const FIELDS: &'static [&'static str] = &["id", "name", "version", "owner_id"];
        const EXPAND: &'static [(&'static str, Scope)] = &[("owner", Scope::PeopleRead)];
    }

    fn names<P: Param>(values: &[&str]) -> (u64, Vec<(String, String)>) {
        let parsed = <Names<Pets, P> as ParseFromParameter>::parse_from_parameters(values)
            .unwrap_or_else(|_| unreachable!("parsing never fails"));
        let mut errors = Vec::new();
        let bits = parsed.bits(&mut errors);
        (
            bits,
            errors.into_iter().map(|e| (e.field, e.code)).collect(),
        )
    }

    #[test]
    fn names_are_checked_one_by_one_and_each_bad_one_is_named() {
        assert_eq!(names::<FieldsParam>(&["name,owner_id"]), (0b1010, vec![]));
        assert_eq!(names::<FieldsParam>(&["id,id"]), (0b1, vec![]));
        let (_, errors) = names::<FieldsParam>(&["name,,Name, id"]);
        let codes: Vec<&str> = errors.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(codes, ["empty_name", "unknown_field", "unknown_field"]);
        assert!(errors.iter().all(|(f, _)| f == "fields"));
        assert_eq!(names::<FieldsParam>(&[""]).1.len(), 1);
        let (bits, errors) = names::<FieldsParam>(&["name", "id"]);
        assert_eq!((bits, errors[0].1.as_str()), (0b11, "repeated"));
        assert_eq!(names::<ExpandParam>(&["owner"]), (1, vec![]));
        assert_eq!(
            names::<ExpandParam>(&["name"]).1,
            [("expand".to_owned(), "unknown_expansion".to_owned())]
        );
    }

    #[test]
    fn the_schema_pattern_lists_the_names() {
        let MetaSchemaRef::Inline(schema) = <Fields<Pets> as Type>::schema_ref() else {
            unreachable!("an inline schema")
        };
        let one = "(?:id|name|version|owner_id)";
        assert_eq!(schema.pattern, Some(format!("^{one}(?:,{one})*$")));
        assert_eq!(schema.ty, "string");
    }

    #[test]
    fn a_shaped_answer_is_declared_and_served_as_partial_json() {
        type Body = Representation<String, String>;
        let types: Vec<&str> = <Body as ResponseContent>::media_types()
            .iter()
            .map(|m| m.content_type)
            .collect();
        assert_eq!(types, ["application/json; charset=utf-8", PARTIAL_JSON]);
        let resp = poem::IntoResponse::into_response(Body::Partial(JsonOut("x".to_owned())));
        assert_eq!(resp.content_type(), Some(PARTIAL_JSON));
    }

    #[test]
    fn a_bit_is_found_at_compile_time() {
        const OWNER: u64 = bit(Pets::FIELDS, "owner_id");
        assert_eq!(OWNER, 0b1000);
    }

    #[test]
    fn a_shaped_etag_is_weak_and_names_the_shape_and_what_it_embeds() {
        let full = Shape::of::<Pets>(&["id", "name", "version", "owner_id"], &[]);
        let names = Shape::of::<Pets>(&["name"], &[]);
        let owner = Shape::of::<Pets>(&["name"], &["owner"]);
        assert_eq!(names.etag(3, &[]), "W/\"3-2-0\"");
        assert_eq!(owner.etag(3, &[Some(7)]), "W/\"3-2-1-7\"");
        assert_eq!(owner.etag(3, &[None]), "W/\"3-2-1-0\"");
        assert_ne!(full.etag(3, &[]), names.etag(3, &[]));
        assert!(!names.is_full() && names.keeps(0b10) && !names.keeps(0b1000));
        assert!(names.keeping(0b1000).keeps(0b1000));
        assert!(owner.expands(1) && !names.expands(1));
    }
}
