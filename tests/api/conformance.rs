//! Answers that match the schema for every document: documents generated from the server's own
//! introspection (every query and mutation field; fragments on each member of every interface
//! and union; `@skip`/`@include` on every selection; Int arguments at their type's edges, as
//! literals and as variables), sent as a customer and as an administrator, and every answer
//! checked against the introspected types by a validator written here from the GraphQL
//! specification (it shares no code with the server): non-null positions hold no null, lists
//! hold items of their type, scalars and enum values are of their type, an object has exactly
//! the keys its selection asks for (none of those skipped), and every error has a code. Out-of-
//! range Int literals must be refused at validation.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::harness::{TestServer, on_every_backend};

const INTROSPECTION: &str = "{ __schema { queryType { name } mutationType { name } types { kind name
  fields { name type { ...T } args { name defaultValue type { ...T } } }
  inputFields { name defaultValue type { ...T } } enumValues { name } possibleTypes { name } } } }
  fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

/// How deep selections go below the root field.
const DEPTH: usize = 3;

#[derive(Clone, Debug)]
enum TypeRef {
    NonNull(Box<TypeRef>),
    List(Box<TypeRef>),
    Named(String),
}

impl TypeRef {
    fn of(value: &Value) -> Self {
        match value["kind"].as_str() {
            Some("NON_NULL") => TypeRef::NonNull(Box::new(TypeRef::of(&value["ofType"]))),
            Some("LIST") => TypeRef::List(Box::new(TypeRef::of(&value["ofType"]))),
            _ => TypeRef::Named(value["name"].as_str().expect("a named type").to_owned()),
        }
    }

    fn named(&self) -> &str {
        match self {
            TypeRef::NonNull(inner) | TypeRef::List(inner) => inner.named(),
            TypeRef::Named(name) => name,
        }
    }

    fn text(&self) -> String {
        match self {
            TypeRef::NonNull(inner) => format!("{}!", inner.text()),
            TypeRef::List(inner) => format!("[{}]", inner.text()),
            TypeRef::Named(name) => name.clone(),
        }
    }
}

struct Field {
    name: String,
    ty: TypeRef,
    args: Vec<(String, TypeRef, bool)>,
}

struct Type {
    kind: String,
    fields: Vec<Field>,
    input_fields: Vec<(String, TypeRef, bool)>,
    enum_values: Vec<String>,
    possible: Vec<String>,
}

struct Schema {
    types: HashMap<String, Type>,
    query: String,
    mutation: String,
}

fn arguments(list: &Value) -> Vec<(String, TypeRef, bool)> {
    list.as_array()
        .map(|args| {
            args.iter()
                .map(|arg| {
                    (
                        arg["name"].as_str().unwrap().to_owned(),
                        TypeRef::of(&arg["type"]),
                        !arg["defaultValue"].is_null(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Schema {
    fn from_introspection(data: &Value) -> Self {
        let schema = &data["__schema"];
        let mut types = HashMap::new();
        for ty in schema["types"].as_array().unwrap() {
            let names = |list: &Value| -> Vec<String> {
                list.as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|item| item["name"].as_str().unwrap().to_owned())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let fields = ty["fields"]
                .as_array()
                .map(|fields| {
                    fields
                        .iter()
                        .map(|field| Field {
                            name: field["name"].as_str().unwrap().to_owned(),
                            ty: TypeRef::of(&field["type"]),
                            args: arguments(&field["args"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            types.insert(
                ty["name"].as_str().unwrap().to_owned(),
                Type {
                    kind: ty["kind"].as_str().unwrap().to_owned(),
                    fields,
                    input_fields: arguments(&ty["inputFields"]),
                    enum_values: names(&ty["enumValues"]),
                    possible: names(&ty["possibleTypes"]),
                },
            );
        }
        Self {
            types,
            query: schema["queryType"]["name"].as_str().unwrap().to_owned(),
            mutation: schema["mutationType"]["name"].as_str().unwrap().to_owned(),
        }
    }

    fn ty(&self, name: &str) -> &Type {
        &self.types[name]
    }

    fn is_leaf(&self, name: &str) -> bool {
        matches!(self.ty(name).kind.as_str(), "SCALAR" | "ENUM")
    }

    fn is_abstract(&self, name: &str) -> bool {
        matches!(self.ty(name).kind.as_str(), "INTERFACE" | "UNION")
    }

    /// A literal of an input type: the smallest value that is well-typed (ids are 1).
    fn literal(&self, ty: &TypeRef) -> String {
        match ty {
            TypeRef::NonNull(inner) => self.literal(inner),
            TypeRef::List(inner) => format!("[{}]", self.literal(inner)),
            TypeRef::Named(name) => match name.as_str() {
                "Int" | "Won" => "1".into(),
                "Float" => "1.5".into(),
                "String" => "\"conformance\"".into(),
                "Boolean" => "true".into(),
                "ID" => "\"1\"".into(),
                "DateTime" => "\"2026-01-01T00:00:00Z\"".into(),
                "NaiveDate" | "Date" => "\"2026-01-01\"".into(),
                _ => {
                    let ty = self.ty(name);
                    match ty.kind.as_str() {
                        "ENUM" => ty.enum_values[0].clone(),
                        "INPUT_OBJECT" => {
                            let fields: Vec<String> = ty
                                .input_fields
                                .iter()
                                .filter(|(_, ty, default)| {
                                    matches!(ty, TypeRef::NonNull(_)) && !default
                                })
                                .map(|(name, ty, _)| format!("{name}: {}", self.literal(ty)))
                                .collect();
                            format!("{{ {} }}", fields.join(", "))
                        }
                        _ => "\"conformance\"".into(),
                    }
                }
            },
        }
    }
}

/// How a document selects below its root field.
#[derive(Copy, Clone, Debug, PartialEq)]
enum Mode {
    /// Every field to `DEPTH`, `__typename` and a fragment on each member of abstract types.
    Full,
    /// Abstract types through fragments only, one leaf each (so members without a fragment
    /// come back as `{}`).
    FragmentsOnly,
    /// Every nested selection under `@skip(if: true)` (objects come back as `{}`).
    Skipped,
    /// Every nested selection under `@include(if: $no)` with `$no: false`.
    Excluded,
}

/// One selected field, as the validator expects it back.
struct Selected {
    key: String,
    ty: TypeRef,
    /// Absent from the answer (skipped or not included).
    absent: bool,
    /// For composite types: the selection by concrete type name.
    children: Option<Selection>,
}

/// A selection set: fields on every type, and fields on one concrete type (fragments).
#[derive(Default)]
struct Selection {
    always: Vec<Selected>,
    on_type: Vec<(String, Vec<Selected>)>,
}

impl Selection {
    /// The fields a value of the concrete type `name` answers (possible types of an interface
    /// fragment included).
    fn for_type<'a>(&'a self, schema: &Schema, name: &str) -> Vec<&'a Selected> {
        let mut fields: Vec<&Selected> = self.always.iter().collect();
        for (condition, selected) in &self.on_type {
            let applies =
                condition == name || schema.ty(condition).possible.iter().any(|p| p == name);
            if applies {
                fields.extend(selected.iter());
            }
        }
        fields
    }
}

struct Generator<'a> {
    schema: &'a Schema,
    mode: Mode,
}

impl Generator<'_> {
    fn directive(&self) -> &'static str {
        match self.mode {
            Mode::Skipped => " @skip(if: true)",
            Mode::Excluded => " @include(if: $no)",
            _ => "",
        }
    }

    fn arguments(&self, field: &Field) -> String {
        let args: Vec<String> = field
            .args
            .iter()
            .filter(|(_, ty, default)| matches!(ty, TypeRef::NonNull(_)) && !default)
            .map(|(name, ty, _)| format!("{name}: {}", self.schema.literal(ty)))
            .collect();
        if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        }
    }

    /// The text of `type_name`'s selection set and what it selects.
    fn selection(&self, type_name: &str, depth: usize) -> (String, Selection) {
        let mut text = Vec::new();
        let mut selection = Selection::default();
        if self.schema.is_abstract(type_name) {
            if self.mode != Mode::FragmentsOnly {
                text.push("__typename".to_owned());
                selection.always.push(Selected {
                    key: "__typename".into(),
                    ty: TypeRef::NonNull(Box::new(TypeRef::Named("String".into()))),
                    absent: false,
                    children: None,
                });
            }
            for member in &self.schema.ty(type_name).possible {
                let (inner, selected) = if self.mode == Mode::FragmentsOnly {
                    self.first_leaf(member)
                } else {
                    self.fields(member, depth)
                };
                text.push(format!("... on {member} {{ {inner} }}"));
                selection.on_type.push((member.clone(), selected));
            }
        } else {
            let (inner, selected) = self.fields(type_name, depth);
            text.push(inner);
            selection.always = selected;
        }
        (text.join(" "), selection)
    }

    /// One leaf field of an object type, for fragments-only selections.
    fn first_leaf(&self, type_name: &str) -> (String, Vec<Selected>) {
        let field = self
            .schema
            .ty(type_name)
            .fields
            .iter()
            .find(|f| self.schema.is_leaf(f.ty.named()) && self.arguments(f).is_empty())
            .expect("an object type has a leaf field");
        let key = format!("{}_{}", type_name.to_lowercase(), field.name);
        (
            format!("{key}: {}", field.name),
            vec![Selected {
                key,
                ty: field.ty.clone(),
                absent: false,
                children: None,
            }],
        )
    }

    /// Every field of an object type (composite ones while `depth` lasts).
    fn fields(&self, type_name: &str, depth: usize) -> (String, Vec<Selected>) {
        let mut text = Vec::new();
        let mut selected = Vec::new();
        for field in &self.schema.ty(type_name).fields {
            let named = field.ty.named();
            let leaf = self.schema.is_leaf(named);
            if !leaf && depth == 0 {
                continue;
            }
            let directive = self.directive();
            let args = self.arguments(field);
            let (inner, children) = if leaf {
                (String::new(), None)
            } else {
                let (inner, children) = self.selection(named, depth - 1);
                (format!(" {{ {inner} }}"), Some(children))
            };
            if !leaf && inner.trim() == "{  }" {
                continue;
            }
            text.push(format!("{}{args}{directive}{inner}", field.name));
            selected.push(Selected {
                key: field.name.clone(),
                ty: field.ty.clone(),
                absent: !directive.is_empty(),
                children,
            });
        }
        (text.join(" "), selected)
    }
}

/// A document for one root field, with what the validator expects and the variables to send.
struct Document {
    text: String,
    root: Selected,
    variables: Value,
}

fn documents(schema: &Schema) -> Vec<Document> {
    let mut documents = Vec::new();
    for (operation, root_type) in [("query", &schema.query), ("mutation", &schema.mutation)] {
        for field in &schema.ty(root_type).fields {
            for mode in [
                Mode::Full,
                Mode::FragmentsOnly,
                Mode::Skipped,
                Mode::Excluded,
            ] {
                let generator = Generator { schema, mode };
                documents.push(root_document(&generator, operation, field, None));
                // every Int argument at both edges of its type, as a variable and as a literal
                for (name, ty, _) in &field.args {
                    if ty.named() != "Int" {
                        continue;
                    }
                    for value in [i32::MIN as i64, i32::MAX as i64] {
                        for as_variable in [true, false] {
                            let edge = Some(Edge {
                                name,
                                ty,
                                value,
                                as_variable,
                            });
                            documents.push(root_document(&generator, operation, field, edge));
                        }
                    }
                }
            }
        }
    }
    documents
}

/// An Int argument given the edge of its type.
#[derive(Copy, Clone)]
struct Edge<'a> {
    name: &'a str,
    ty: &'a TypeRef,
    value: i64,
    as_variable: bool,
}

fn root_document(
    generator: &Generator,
    operation: &str,
    field: &Field,
    edge: Option<Edge>,
) -> Document {
    let schema = generator.schema;
    let named = field.ty.named();
    let mut args: Vec<String> = field
        .args
        .iter()
        .filter(|(name, ty, default)| {
            matches!(ty, TypeRef::NonNull(_))
                && !default
                && Some(name.as_str()) != edge.map(|e| e.name)
        })
        .map(|(name, ty, _)| format!("{name}: {}", schema.literal(ty)))
        .collect();
    let (mut definitions, mut variables) = match generator.mode {
        Mode::Excluded => (vec!["$no: Boolean!".to_owned()], json!({ "no": false })),
        _ => (vec![], json!({})),
    };
    match edge {
        Some(edge) if edge.as_variable => {
            args.push(format!("{}: $edge", edge.name));
            definitions.push(format!("$edge: {}", edge.ty.text()));
            variables["edge"] = json!(edge.value);
        }
        Some(edge) => args.push(format!("{}: {}", edge.name, edge.value)),
        None => {}
    }
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("({})", args.join(", "))
    };
    let (inner, children) = if schema.is_leaf(named) {
        (String::new(), None)
    } else {
        let (inner, children) = generator.selection(named, DEPTH);
        (format!(" {{ {inner} }}"), Some(children))
    };
    let definitions = if definitions.is_empty() {
        String::new()
    } else {
        format!("({})", definitions.join(", "))
    };
    let text = format!(
        "{operation} Conformance{definitions} {{ {}{args}{inner} skippedTypename: __typename @skip(if: true) }}",
        field.name
    );
    Document {
        text,
        root: Selected {
            key: field.name.clone(),
            ty: field.ty.clone(),
            absent: false,
            children,
        },
        variables,
    }
}

/// What the validator found wrong in one answer. A nullable field that failed must be there,
/// null. One deviation from the spec is allowed, and only where an error names the field: a
/// non-null field that failed may be left out of its object (and an object all of whose fields
/// failed may be null) instead of nulling its parent: the server keeps that so that an error in
/// one mutation of a document never hides the answers of those already applied
/// (vendor/README.md).
struct Checker<'a> {
    schema: &'a Schema,
    /// Paths of the answer's errors ("a.0.b").
    error_paths: BTreeSet<String>,
    violations: Vec<String>,
}

impl Checker<'_> {
    /// Whether an error names `path` or a field below it.
    fn explained(&self, path: &str) -> bool {
        self.error_paths
            .iter()
            .any(|error| error == path || error.starts_with(&format!("{path}.")))
    }

    fn check(&mut self, path: &str, value: &Value, ty: &TypeRef, children: Option<&Selection>) {
        match ty {
            TypeRef::NonNull(inner) => {
                if value.is_null() {
                    if !self.explained(path) {
                        self.violations
                            .push(format!("{path}: null where the schema says {}", ty.text()));
                    }
                    return;
                }
                self.check(path, value, inner, children);
            }
            _ if value.is_null() => {}
            TypeRef::List(inner) => match value.as_array() {
                Some(items) => {
                    for (index, item) in items.iter().enumerate() {
                        self.check(&format!("{path}.{index}"), item, inner, children);
                    }
                }
                None => self
                    .violations
                    .push(format!("{path}: {value} is not a list")),
            },
            TypeRef::Named(name) => self.check_named(path, value, name, children),
        }
    }

    fn check_named(&mut self, path: &str, value: &Value, name: &str, children: Option<&Selection>) {
        let fine = match name {
            "Int" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            "Float" => value.is_number(),
            "Boolean" => value.is_boolean(),
            "String" | "ID" => value.is_string(),
            "Won" => value.as_i64().is_some(),
            _ if self.schema.ty(name).kind == "ENUM" => value
                .as_str()
                .is_some_and(|v| self.schema.ty(name).enum_values.iter().any(|e| e == v)),
            _ if self.schema.ty(name).kind == "SCALAR" => !value.is_object() && !value.is_array(),
            _ => return self.check_object(path, value, name, children.expect("a selection")),
        };
        if !fine {
            self.violations
                .push(format!("{path}: {value} is not a value of {name}"));
        }
    }

    fn check_object(&mut self, path: &str, value: &Value, name: &str, selection: &Selection) {
        let Some(object) = value.as_object() else {
            self.violations
                .push(format!("{path}: {value} is not an object of {name}"));
            return;
        };
        let present: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        // the concrete type: the one whose selected keys are exactly those present (an
        // abstract type's members may each select other keys)
        let candidates: Vec<String> = if self.schema.is_abstract(name) {
            self.schema.ty(name).possible.clone()
        } else {
            vec![name.to_owned()]
        };
        let typename = object.get("__typename").and_then(Value::as_str);
        let expected = |concrete: &str| -> BTreeSet<String> {
            selection
                .for_type(self.schema, concrete)
                .into_iter()
                .filter(|s| !s.absent)
                .map(|s| s.key.clone())
                .collect()
        };
        let matching = candidates.iter().find(|concrete| {
            typename.is_none_or(|t| t == concrete.as_str())
                && selection
                    .for_type(self.schema, concrete)
                    .iter()
                    .all(|selected| {
                        selected.absent
                            || present.contains(selected.key.as_str())
                            || (matches!(selected.ty, TypeRef::NonNull(_))
                                && self.explained(&format!("{path}.{}", selected.key)))
                    })
                && present.iter().all(|key| expected(concrete).contains(*key))
        });
        let Some(concrete) = matching else {
            self.violations.push(format!(
                "{path}: keys {present:?} are not what the selection on {name} asks for (typename {typename:?})"
            ));
            return;
        };
        for selected in selection.for_type(self.schema, concrete) {
            if selected.absent {
                continue;
            }
            if let Some(value) = object.get(&selected.key) {
                let path = format!("{path}.{}", selected.key);
                self.check(&path, value, &selected.ty, selected.children.as_ref());
            }
        }
    }
}

/// The violations in one answer to `document`.
fn violations(schema: &Schema, document: &Document, answer: &Value) -> Vec<String> {
    let mut checker = Checker {
        schema,
        error_paths: BTreeSet::new(),
        violations: Vec::new(),
    };
    for error in answer["errors"].as_array().into_iter().flatten() {
        if error["extensions"]["code"].as_str().is_none() {
            checker
                .violations
                .push(format!("an error without a code: {error}"));
        }
        let path: Vec<String> = error["path"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|segment| match segment {
                Value::String(key) => key.clone(),
                other => other.to_string(),
            })
            .collect();
        checker.error_paths.insert(path.join("."));
    }
    let data = &answer["data"];
    if data.is_null() {
        if answer["errors"].as_array().is_none_or(Vec::is_empty) {
            checker.violations.push("no data and no error".into());
        }
        return checker.violations;
    }
    let root = &document.root;
    match data.get(&root.key) {
        Some(value) => checker.check(&root.key, value, &root.ty, root.children.as_ref()),
        None if matches!(root.ty, TypeRef::NonNull(_)) && checker.explained(&root.key) => {}
        None => checker.violations.push(format!("{}: missing", root.key)),
    }
    if data.get("skippedTypename").is_some() {
        checker
            .violations
            .push("an excluded field was answered".into());
    }
    checker.violations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_generated_document_is_answered_as_the_schema_says() {
    on_every_backend(|server| async move {
        let customer = server.customer("conformance", 1_000_000).await;
        server.create_product("키보드", "키보드", 10_000, 100).await;
        let introspection = server.anonymous().data(INTROSPECTION, json!({})).await;
        let schema = Schema::from_introspection(&introspection);
        let documents = documents(&schema);
        let mut failures = Vec::new();
        let (mut answered, mut with_data) = (0, 0);
        for document in &documents {
            for caller in [server.user(customer), server.admin()] {
                let answer = caller
                    .post(&document.text, document.variables.clone())
                    .await;
                answered += 1;
                with_data += usize::from(!answer["data"].is_null());

                for violation in violations(&schema, document, &answer) {
                    failures.push(format!(
                        "{violation}\n  in {}\n  answer {answer}",
                        document.text
                    ));
                }
            }
        }
        eprintln!(
            "[{}] {} generated documents, {answered} answers checked ({with_data} with data)",
            server.backend,
            documents.len()
        );
        assert!(documents.len() >= 100, "{} documents", documents.len());
        assert!(
            with_data * 3 >= answered,
            "a third of the answers at least carry data: {with_data} of {answered}"
        );
        assert!(
            failures.is_empty(),
            "[{}] {} of {answered} answers do not match the schema; the first ones:\n{}",
            server.backend,
            failures.len(),
            failures
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    })
    .await;
}

/// The repros, one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_selections_are_empty_objects_failed_nullable_fields_null_and_out_of_range_literals_fail_validation()
 {
    on_every_backend(|server: TestServer| async move {
        let customer = server.customer("shopper", 5_000).await;
        let product = server.create_product("웹캠", "카메라", 30_000, 10).await;
        let data = server
            .user(customer)
            .data(
                "mutation { chargeBalance(input: {amount: 0}) { userErrors { ... on OutOfStockError { productId } } } }",
                json!({}),
            )
            .await;
        assert_eq!(data, json!({ "chargeBalance": { "userErrors": [{}] } }));
        let data = server
            .user(customer)
            .data("{ me { id @skip(if: true) } }", json!({}))
            .await;
        assert_eq!(data, json!({ "me": {} }));
        let data = server
            .anonymous()
            .data(
                "{ products(first: 1) { edges { node { ... @skip(if: true) { id } } } } }",
                json!({}),
            )
            .await;
        assert_eq!(data["products"]["edges"][0]["node"], json!({}), "{data}");

        // a nullable field that fails is there, null, beside its error
        let answer = server
            .anonymous()
            .post("{ a: product(id: \"-5\") { id } b: __typename }", json!({}))
            .await;
        assert_eq!(answer["data"], json!({ "a": null, "b": "Query" }), "{answer}");
        assert_eq!(answer["errors"][0]["path"], json!(["a"]));

        // out of range, at the top and inside a fragment that would not apply: refused by
        // validation, before anything runs (the charge is not applied), with the code of a value
        // that does not fit its type (README: BAD_USER_INPUT, as a literal or in a variable)
        for document in [
            "{ products(first: 2147483648) { edges { node { id } } } }".to_owned(),
            format!(
                "mutation {{ chargeBalance(input: {{amount: 100}}) {{ userErrors {{ ... on OutOfStockError {{ alternatives(limit: 2147483648) {{ id }} }} }} }} }} # {product}"
            ),
        ] {
            let answer = server.user(customer).post(&document, json!({})).await;
            assert_eq!(answer["data"], Value::Null, "{answer}");
            assert_eq!(
                answer["errors"][0]["extensions"]["code"],
                json!("BAD_USER_INPUT"),
                "{document}: {answer}"
            );
        }
        let balance = server
            .user(customer)
            .data("{ me { balance } }", json!({}))
            .await;
        assert_eq!(balance["me"]["balance"], json!(5_000));
    })
    .await;
}
