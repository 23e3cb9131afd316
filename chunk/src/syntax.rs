//! Chunking along a syntax tree, after cAST (Zhang et al., 2025): definitions that fit
//! the budget are kept whole; a node over the budget is replaced by its children,
//! recursively, so a large class splits on method boundaries and a large function on
//! statement boundaries; small neighbours are merged up to the budget. The chunks
//! partition the file: every byte lies in exactly one chunk.

use crate::grammar::{Definition, Grammar};
use crate::lines::{line_windows, WindowLimits};
use crate::span::LineIndex;
use crate::tokens::TokenMap;
use crate::{ChunkKind, Piece};
use std::rc::Rc;
use tree_sitter::{Node, Tree};

/// Deeper trees are cut into line windows rather than recursed into: no input can
/// exhaust the stack.
const MAX_DEPTH: usize = 128;

/// Closing tokens stay with the code they close instead of starting a chunk.
const CLOSERS: &[&str] = &["}", ")", "]", ";", ",", "end"];

/// Budgets of syntax chunking, in tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Most tokens in a chunk.
    pub max_tokens: usize,
    /// Chunks under this many tokens merge with their neighbours.
    pub merge_below: usize,
    /// Windows for nodes over the budget that have no children.
    pub windows: WindowLimits,
}

/// The definitions enclosing a node, innermost last.
#[derive(Debug, Default)]
struct Scope {
    parent: Option<Rc<Scope>>,
    name: String,
    kind: Option<ChunkKind>,
    depth: usize,
}

/// A node kept whole: the unit that chunks are made of.
struct Atom {
    start: usize,
    end: usize,
    tokens: usize,
    definition: Option<Definition>,
    scope: Rc<Scope>,
    /// A leaf over the budget: cut into line windows.
    oversized: bool,
    /// A comment or attribute: it joins the definition below it.
    trivia: bool,
}

/// A run of atoms that becomes one chunk.
struct Group {
    start: usize,
    end: usize,
    tokens: usize,
    /// The definitions it holds, in order, with their sizes in tokens.
    definitions: Vec<(Definition, usize)>,
    /// The scope of its largest atom: the code it mostly holds.
    scope: Rc<Scope>,
    largest_atom: usize,
    oversized: bool,
}

pub(crate) fn chunk_tree(
    grammar: Grammar,
    tree: &Tree,
    text: &str,
    tokens: &TokenMap,
    budget: Budget,
) -> Vec<Piece> {
    let mut atoms = Vec::new();
    let root_scope = Rc::new(Scope::default());
    let mut flattener = Flattener {
        grammar,
        text,
        tokens,
        budget,
        atoms: &mut atoms,
    };
    flattener.flatten(tree.root_node(), &root_scope, 0);
    let atoms = attach_trivia(attach_closers(atoms, text));
    let groups = merge_small_groups(group_atoms(atoms, budget), budget);
    pieces(grammar, groups, text, budget)
}

struct Flattener<'a> {
    grammar: Grammar,
    text: &'a str,
    tokens: &'a TokenMap,
    budget: Budget,
    atoms: &'a mut Vec<Atom>,
}

impl Flattener<'_> {
    /// Pushes the children of `node` as atoms, expanding those over the budget.
    fn flatten(&mut self, node: Node, scope: &Rc<Scope>, depth: usize) {
        let mut cursor = node.walk();
        let children: Vec<Node> = node.children(&mut cursor).collect();
        for child in children {
            if child.start_byte() == child.end_byte() {
                continue; // zero-width nodes (missing tokens after errors)
            }
            let tokens = self.tokens.count(child.start_byte(), child.end_byte());
            let definition = self.grammar.definition(child, self.text);
            let fits = tokens <= self.budget.max_tokens;
            if fits || child.child_count() == 0 || depth >= MAX_DEPTH {
                self.atoms.push(Atom {
                    start: child.start_byte(),
                    end: child.end_byte(),
                    tokens,
                    definition: definition.map(|d| in_scope(d, scope)),
                    scope: scope.clone(),
                    oversized: !fits,
                    trivia: self.grammar.is_leading_trivia(child),
                });
                continue;
            }
            let inner = match definition {
                Some(definition) => {
                    let definition = in_scope(definition, scope);
                    Rc::new(Scope {
                        parent: Some(scope.clone()),
                        name: definition.name,
                        kind: Some(definition.kind),
                        depth: scope.depth + 1,
                    })
                }
                None => scope.clone(),
            };
            self.flatten(child, &inner, depth + 1);
        }
    }
}

/// A function directly inside a class, impl or trait is a method.
fn in_scope(mut definition: Definition, scope: &Scope) -> Definition {
    if definition.kind == ChunkKind::Function && scope.kind.is_some_and(ChunkKind::holds_methods) {
        definition.kind = ChunkKind::Method;
    }
    definition
}

/// Closing tokens (`}`, `;`) join the atom before them.
fn attach_closers(atoms: Vec<Atom>, text: &str) -> Vec<Atom> {
    let mut out: Vec<Atom> = Vec::with_capacity(atoms.len());
    for atom in atoms {
        let is_closer = CLOSERS.contains(&&text[atom.start..atom.end]);
        match out.last_mut() {
            Some(prev) if is_closer && !prev.oversized => {
                prev.end = atom.end;
                prev.tokens += atom.tokens;
            }
            _ => out.push(atom),
        }
    }
    out
}

/// Comments and attributes join the atom below them: a doc comment stays with its
/// function even when the function itself is split.
fn attach_trivia(atoms: Vec<Atom>) -> Vec<Atom> {
    let mut out: Vec<Atom> = Vec::with_capacity(atoms.len());
    let mut pending: Vec<Atom> = Vec::new();
    for atom in atoms {
        if atom.trivia && !atom.oversized {
            pending.push(atom);
            continue;
        }
        match pending.first() {
            Some(first) if !atom.oversized => {
                let mut merged = atom;
                merged.start = first.start;
                merged.tokens += pending.iter().map(|a| a.tokens).sum::<usize>();
                pending.clear();
                out.push(merged);
            }
            _ => {
                out.append(&mut pending);
                out.push(atom);
            }
        }
    }
    out.append(&mut pending);
    out
}

/// Greedy merge of atoms into groups (cAST): a group grows while it fits the budget;
/// a definition starts a new group unless both it and the group are small.
fn group_atoms(atoms: Vec<Atom>, budget: Budget) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for atom in atoms {
        let start_new = match groups.last() {
            None => true,
            Some(group) => starts_new_group(group, &atom, budget),
        };
        if start_new {
            groups.push(Group {
                start: atom.start,
                end: atom.end,
                tokens: atom.tokens,
                definitions: atom
                    .definition
                    .map(|d| (d, atom.tokens))
                    .into_iter()
                    .collect(),
                scope: atom.scope,
                largest_atom: atom.tokens,
                oversized: atom.oversized,
            });
        } else if let Some(group) = groups.last_mut() {
            group.end = atom.end;
            group.tokens += atom.tokens;
            group
                .definitions
                .extend(atom.definition.map(|d| (d, atom.tokens)));
            if atom.tokens > group.largest_atom {
                group.largest_atom = atom.tokens;
                group.scope = atom.scope;
            }
        }
    }
    groups
}

/// Greedy packing leaves small groups where a large node was split (a class header
/// before its first method, the last lines of a function); each joins a neighbour
/// when the two fit the budget, preferring the neighbour in the same scope.
fn merge_small_groups(mut groups: Vec<Group>, budget: Budget) -> Vec<Group> {
    let mut i = 0;
    while i < groups.len() {
        let group = &groups[i];
        if group.tokens >= budget.merge_below || group.oversized {
            i += 1;
            continue;
        }
        let joins =
            |other: &Group| !other.oversized && other.tokens + group.tokens <= budget.max_tokens;
        let next = groups.get(i + 1).filter(|g| joins(g));
        let prev = i.checked_sub(1).map(|p| &groups[p]).filter(|g| joins(g));
        let same_scope = |g: Option<&Group>| g.is_some_and(|g| Rc::ptr_eq(&g.scope, &group.scope));
        // A header joins what follows it; trailing code joins what precedes it; a
        // small group never joins a shallower neighbour's code before it.
        let forward = same_scope(next)
            || (!same_scope(prev) && next.is_some_and(|n| n.scope.depth >= group.scope.depth));
        let backward = same_scope(prev) || prev.is_some_and(|p| group.scope.depth <= p.scope.depth);
        if forward {
            let small = groups.remove(i);
            let target = &mut groups[i];
            target.start = small.start;
            absorb(target, small, true);
        } else if backward {
            let small = groups.remove(i);
            let target = &mut groups[i - 1];
            target.end = small.end;
            absorb(target, small, false);
        } else {
            i += 1;
        }
    }
    groups
}

/// Adds `other`, which lies just before or after it, to `group` (the caller sets the
/// range).
fn absorb(group: &mut Group, mut other: Group, before: bool) {
    group.tokens += other.tokens;
    if before {
        other.definitions.append(&mut group.definitions);
        group.definitions = other.definitions;
    } else {
        group.definitions.append(&mut other.definitions);
    }
    if other.largest_atom > group.largest_atom {
        group.largest_atom = other.largest_atom;
        group.scope = other.scope;
    }
}

fn starts_new_group(group: &Group, atom: &Atom, budget: Budget) -> bool {
    if group.oversized || atom.oversized || group.tokens + atom.tokens > budget.max_tokens {
        return true;
    }
    let group_small = group.tokens < budget.merge_below;
    let atom_small = atom.tokens < budget.merge_below;
    let has_definition = !group.definitions.is_empty();
    let scope_changes = !Rc::ptr_eq(&group.scope, &atom.scope);
    match (has_definition, atom.definition.is_some()) {
        (true, true) | (true, false) => !(group_small && atom_small),
        (false, true) => !group_small,
        (false, false) => scope_changes && !group_small,
    }
}

/// Turns groups into pieces that partition the text: each starts at the beginning of
/// its first line (when only indentation precedes it there) and ends where the next
/// one starts.
fn pieces(grammar: Grammar, groups: Vec<Group>, text: &str, budget: Budget) -> Vec<Piece> {
    let lines = LineIndex::new(text);
    let mut starts: Vec<usize> = groups.iter().map(|g| line_start(text, g.start)).collect();
    if let Some(first) = starts.first_mut() {
        *first = 0;
    }
    // Starts must rise strictly; a group sharing a line with the previous one keeps
    // its own byte start.
    for i in 1..starts.len() {
        if starts[i] <= starts[i - 1] {
            starts[i] = groups[i].start.max(starts[i - 1]);
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (i, group) in groups.iter().enumerate() {
        let start = starts[i];
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        if start >= end {
            continue;
        }
        let (symbol, kind) = describe(grammar, group);
        if group.oversized {
            for window in line_windows(&text[start..end], budget.windows) {
                out.push(Piece {
                    span: lines.span(start + window.start_byte, start + window.end_byte),
                    symbol: symbol.clone(),
                    kind,
                });
            }
            continue;
        }
        out.push(Piece {
            span: lines.span(start, end),
            symbol,
            kind,
        });
    }
    out
}

fn line_start(text: &str, offset: usize) -> usize {
    let before = &text[..offset];
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    if before[start..].trim().is_empty() {
        start
    } else {
        offset
    }
}

/// The symbol and kind a group is stored under.
fn describe(grammar: Grammar, group: &Group) -> (Option<String>, ChunkKind) {
    let separator = grammar.separator();
    let mut path = Vec::new();
    let mut scope = Some(&group.scope);
    while let Some(s) = scope {
        if s.kind.is_some() {
            path.push(s.name.clone());
        }
        scope = s.parent.as_ref();
    }
    path.reverse();
    let qualify = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{}{separator}{name}", path.join(separator))
        }
    };
    let Some((largest, _)) = group.definitions.iter().max_by_key(|(_, tokens)| *tokens) else {
        return match group.scope.kind {
            Some(kind) => (Some(path.join(separator)), kind),
            None => (None, ChunkKind::Block),
        };
    };
    // Several definitions: all named (up to a few), the kind of the largest.
    const SHOWN: usize = 4;
    let defs = &group.definitions;
    let mut names: Vec<String> = defs
        .iter()
        .take(SHOWN)
        .map(|(d, _)| qualify(&d.name))
        .collect();
    if defs.len() > SHOWN {
        names.push(format!("+{}", defs.len() - SHOWN));
    }
    (Some(names.join(", ")), largest.kind)
}
