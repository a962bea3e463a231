//! The checks on a parsed document, each fragment measured once (selections once expanded, field
//! depth, nesting, fragment cycles, mutation fields), and what the transport needs to know of it.

use std::collections::{HashMap, HashSet};

use async_graphql::Name;
use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};

use super::{DocumentLimits, LimitError};

/// What a request's document does, as far as the transport needs to know before executing it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Inspection {
    /// The type of the operation the request selects (`None`: the document cannot execute).
    pub operation: Option<OperationType>,
    /// Fields at the root of the selected mutation (each one a mutation to rate-limit).
    pub mutation_fields: usize,
}

/// What a parsed document selects, as far as the transport needs to know; nothing when it fails
/// a limit (its execution refuses it and says why).
pub fn inspect_parsed(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    limits: &DocumentLimits,
) -> Inspection {
    if check_document(document, operation_name, limits).is_err() {
        return Inspection::default();
    }
    let Some(operation) = selected_operation(document, operation_name) else {
        return Inspection::default();
    };
    let mutation_fields = match operation.ty {
        OperationType::Mutation => root_fields(document, &operation.selection_set.node),
        _ => 0,
    };
    Inspection {
        operation: Some(operation.ty),
        mutation_fields,
    }
}

/// The checks on the parsed document, each fragment measured once.
pub fn check_document(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    limits: &DocumentLimits,
) -> Result<(), LimitError> {
    let mut measure = Measure {
        document,
        limits,
        fragments: HashMap::new(),
    };
    let mut selections = 0u64;
    for (_, operation) in document.operations.iter() {
        let root = &operation.node.selection_set.node;
        let cost = measure.selection_set(root, 1)?;
        selections = selections.saturating_add(cost.selections);
        if selections > limits.max_selections as u64 {
            return Err(LimitError::TooManySelections(limits.max_selections));
        }
        measure.root_depths(root)?;
    }
    if let Some(operation) = selected_operation(document, operation_name)
        && operation.ty == OperationType::Mutation
    {
        let fields = root_fields(document, &operation.selection_set.node);
        if fields > limits.max_mutation_fields {
            return Err(LimitError::TooManyMutationFields(
                fields,
                limits.max_mutation_fields,
            ));
        }
    }
    Ok(())
}

/// The size of a selection set with its fragments expanded.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct Cost {
    /// Fields, spreads and inline fragments.
    selections: u64,
    /// Deepest field nesting below (a leaf field is 1).
    depth: usize,
    /// Deepest nesting of selection sets and spreads below.
    nesting: usize,
}

enum FragmentState {
    Measuring,
    Measured(Cost),
}

struct Measure<'a> {
    document: &'a ExecutableDocument,
    limits: &'a DocumentLimits,
    fragments: HashMap<&'a str, FragmentState>,
}

impl<'a> Measure<'a> {
    /// `level`: how deep this selection set sits (the operation's is 1).
    fn selection_set(&mut self, set: &'a SelectionSet, level: usize) -> Result<Cost, LimitError> {
        if level > self.limits.max_recursion() {
            return Err(LimitError::RecursionTooDeep(self.limits.max_recursion()));
        }
        let mut total = Cost::default();
        for item in &set.items {
            let (inner, field) = match &item.node {
                Selection::Field(field) => {
                    let sub = &field.node.selection_set.node;
                    let inner = if sub.items.is_empty() {
                        Cost::default()
                    } else {
                        self.selection_set(sub, level + 1)?
                    };
                    (inner, true)
                }
                Selection::InlineFragment(inline) => (
                    self.selection_set(&inline.node.selection_set.node, level + 1)?,
                    false,
                ),
                Selection::FragmentSpread(spread) => (
                    self.fragment(&spread.node.fragment_name.node, level + 1)?,
                    false,
                ),
            };
            total.selections = total
                .selections
                .saturating_add(1)
                .saturating_add(inner.selections);
            if total.selections > self.limits.max_selections as u64 {
                return Err(LimitError::TooManySelections(self.limits.max_selections));
            }
            total.depth = total.depth.max(inner.depth + usize::from(field));
            total.nesting = total.nesting.max(inner.nesting + 1);
        }
        Ok(total)
    }

    /// A fragment's cost, measured the first time it is spread; 0 for an unknown one (validation
    /// reports it).
    fn fragment(&mut self, name: &'a Name, level: usize) -> Result<Cost, LimitError> {
        let cost = match self.fragments.get(name.as_str()) {
            Some(FragmentState::Measured(cost)) => *cost,
            Some(FragmentState::Measuring) => {
                return Err(LimitError::FragmentCycle(name.to_string()));
            }
            None => {
                let Some(definition) = self.document.fragments.get(name) else {
                    return Ok(Cost::default());
                };
                self.fragments
                    .insert(name.as_str(), FragmentState::Measuring);
                // the cost is relative to where the fragment sits, so it holds wherever it is
                // spread; `level` only bounds this walk's own recursion
                let cost = self.selection_set(&definition.node.selection_set.node, level)?;
                self.fragments
                    .insert(name.as_str(), FragmentState::Measured(cost));
                cost
            }
        };
        if level + cost.nesting > self.limits.max_recursion() + 1 {
            return Err(LimitError::RecursionTooDeep(self.limits.max_recursion()));
        }
        Ok(cost)
    }

    /// Depth limits, judged per root field: introspection (`__schema`, `__type`) by its own bound.
    fn root_depths(&mut self, root: &'a SelectionSet) -> Result<(), LimitError> {
        let mut visited = HashSet::new();
        let mut fields = vec![];
        collect_root_fields(self.document, root, &mut visited, &mut fields);
        for field in fields {
            let sub = &field.selection_set.node;
            let depth = if sub.items.is_empty() {
                1
            } else {
                1 + self.selection_set(sub, 2)?.depth
            };
            let name = field.name.node.as_str();
            if name == "__schema" || name == "__type" {
                if depth > self.limits.max_introspection_depth {
                    return Err(LimitError::IntrospectionTooDeep(
                        depth,
                        self.limits.max_introspection_depth,
                    ));
                }
            } else if depth > self.limits.max_depth {
                return Err(LimitError::TooDeep(depth, self.limits.max_depth));
            }
        }
        Ok(())
    }
}

/// The operation a request runs: the named one, or the only one.
fn selected_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    let mut operations = document.operations.iter();
    let found = match operation_name {
        Some(wanted) => operations.find(|(name, _)| name.is_some_and(|n| n.as_str() == wanted)),
        None => {
            let first = operations.next();
            operations.next().is_none().then_some(first).flatten()
        }
    };
    found.map(|(_, operation)| &operation.node)
}

/// The fields at the root of a selection set as execution collects them: fragments followed once,
/// one field per response key, `__typename` and the like not counted.
fn root_fields(document: &ExecutableDocument, root: &SelectionSet) -> usize {
    let mut visited = HashSet::new();
    let mut fields = vec![];
    collect_root_fields(document, root, &mut visited, &mut fields);
    fields
        .iter()
        .filter(|field| !field.name.node.starts_with("__"))
        .map(|field| field.response_key().node.as_str())
        .collect::<HashSet<_>>()
        .len()
}

fn collect_root_fields<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    visited: &mut HashSet<&'a str>,
    fields: &mut Vec<&'a async_graphql::parser::types::Field>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => fields.push(&field.node),
            Selection::InlineFragment(inline) => {
                collect_root_fields(document, &inline.node.selection_set.node, visited, fields)
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                if visited.insert(name.as_str())
                    && let Some(definition) = document.fragments.get(name)
                {
                    collect_root_fields(
                        document,
                        &definition.node.selection_set.node,
                        visited,
                        fields,
                    );
                }
            }
        }
    }
}
