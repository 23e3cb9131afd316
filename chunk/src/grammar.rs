//! The tree-sitter grammars Lancet chunks with, and what counts as a definition in each.

use crate::ChunkKind;
use tree_sitter::{Language, Node};

/// A language chunked along its syntax tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    /// Rust.
    Rust,
    /// Python.
    Python,
    /// JavaScript (and JSX).
    JavaScript,
    /// TypeScript.
    TypeScript,
    /// TypeScript with JSX.
    Tsx,
    /// Go.
    Go,
    /// Java.
    Java,
    /// C.
    C,
    /// C++.
    Cpp,
}

/// A definition found in the tree: its name and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Definition {
    pub name: String,
    pub kind: ChunkKind,
}

impl Grammar {
    /// The grammar for a language name as the language map writes it.
    pub fn for_language(language: &str) -> Option<Grammar> {
        Some(match language {
            "rust" => Grammar::Rust,
            "python" => Grammar::Python,
            "javascript" => Grammar::JavaScript,
            "typescript" => Grammar::TypeScript,
            "tsx" => Grammar::Tsx,
            "go" => Grammar::Go,
            "java" => Grammar::Java,
            "c" => Grammar::C,
            "cpp" => Grammar::Cpp,
            _ => return None,
        })
    }

    pub(crate) fn language(self) -> Language {
        match self {
            Grammar::Rust => tree_sitter_rust::LANGUAGE.into(),
            Grammar::Python => tree_sitter_python::LANGUAGE.into(),
            Grammar::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Grammar::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Grammar::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Grammar::Go => tree_sitter_go::LANGUAGE.into(),
            Grammar::Java => tree_sitter_java::LANGUAGE.into(),
            Grammar::C => tree_sitter_c::LANGUAGE.into(),
            Grammar::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        }
    }

    /// How qualified names are joined (`Type::method`, `Class.method`).
    pub(crate) fn separator(self) -> &'static str {
        match self {
            Grammar::Rust | Grammar::Cpp | Grammar::C => "::",
            _ => ".",
        }
    }

    /// Comments and attributes: they belong to the definition that follows them.
    pub(crate) fn is_leading_trivia(self, node: Node) -> bool {
        let kind = node.kind();
        kind.contains("comment")
            || matches!(
                (self, kind),
                (Grammar::Rust, "attribute_item") | (Grammar::Java, "marker_annotation")
            )
    }

    /// The definition `node` is, if it is one.
    pub(crate) fn definition(self, node: Node, text: &str) -> Option<Definition> {
        let (kind, name) = match self {
            Grammar::Rust => rust_definition(node, text)?,
            Grammar::Python => python_definition(node, text)?,
            Grammar::JavaScript | Grammar::TypeScript | Grammar::Tsx => {
                script_definition(node, text)?
            }
            Grammar::Go => go_definition(node, text)?,
            Grammar::Java => java_definition(node, text)?,
            Grammar::C | Grammar::Cpp => c_definition(node, text)?,
        };
        Some(Definition { name, kind })
    }
}

fn node_text<'t>(node: Node, text: &'t str) -> &'t str {
    text.get(node.start_byte()..node.end_byte()).unwrap_or("")
}

/// The text of the field `field`, with whitespace runs collapsed (names may span lines).
fn field_text(node: Node, field: &str, text: &str) -> Option<String> {
    let child = node.child_by_field_name(field)?;
    Some(
        node_text(child, text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn named(node: Node, text: &str, kind: ChunkKind) -> Option<(ChunkKind, String)> {
    Some((kind, field_text(node, "name", text)?))
}

fn rust_definition(node: Node, text: &str) -> Option<(ChunkKind, String)> {
    match node.kind() {
        "function_item" | "function_signature_item" => named(node, text, ChunkKind::Function),
        "struct_item" | "union_item" => named(node, text, ChunkKind::Struct),
        "enum_item" => named(node, text, ChunkKind::Enum),
        "trait_item" => named(node, text, ChunkKind::Trait),
        "mod_item" => named(node, text, ChunkKind::Module),
        "macro_definition" => named(node, text, ChunkKind::Macro),
        "type_item" => named(node, text, ChunkKind::Type),
        "impl_item" => {
            let ty = field_text(node, "type", text)?;
            let name = match field_text(node, "trait", text) {
                Some(tr) => format!("{tr} for {ty}"),
                None => ty,
            };
            Some((ChunkKind::Impl, name))
        }
        _ => None,
    }
}

fn python_definition(node: Node, text: &str) -> Option<(ChunkKind, String)> {
    match node.kind() {
        "function_definition" => named(node, text, ChunkKind::Function),
        "class_definition" => named(node, text, ChunkKind::Class),
        "decorated_definition" => python_definition(node.child_by_field_name("definition")?, text),
        _ => None,
    }
}

fn script_definition(node: Node, text: &str) -> Option<(ChunkKind, String)> {
    match node.kind() {
        "function_declaration" | "generator_function_declaration" | "function_signature" => {
            named(node, text, ChunkKind::Function)
        }
        "class_declaration" | "abstract_class_declaration" => named(node, text, ChunkKind::Class),
        "method_definition" | "method_signature" | "abstract_method_signature" => {
            named(node, text, ChunkKind::Method)
        }
        "interface_declaration" => named(node, text, ChunkKind::Interface),
        "type_alias_declaration" => named(node, text, ChunkKind::Type),
        "enum_declaration" => named(node, text, ChunkKind::Enum),
        "internal_module" | "module" => named(node, text, ChunkKind::Module),
        "export_statement" => script_definition(node.child_by_field_name("declaration")?, text),
        // `const handler = (req) => { ... }` is a function named `handler`.
        "lexical_declaration" | "variable_declaration" => {
            let mut cursor = node.walk();
            let declarator = node
                .named_children(&mut cursor)
                .find(|c| c.kind() == "variable_declarator")?;
            let value = declarator.child_by_field_name("value")?;
            match value.kind() {
                "arrow_function" | "function_expression" | "function" | "generator_function" => {
                    named(declarator, text, ChunkKind::Function)
                }
                "class" => named(declarator, text, ChunkKind::Class),
                _ => None,
            }
        }
        _ => None,
    }
}

fn go_definition(node: Node, text: &str) -> Option<(ChunkKind, String)> {
    match node.kind() {
        "function_declaration" => named(node, text, ChunkKind::Function),
        "method_declaration" => {
            let name = field_text(node, "name", text)?;
            let receiver = node
                .child_by_field_name("receiver")
                .and_then(|r| go_receiver_type(r, text));
            Some(match receiver {
                Some(ty) => (ChunkKind::Method, format!("{ty}.{name}")),
                None => (ChunkKind::Method, name),
            })
        }
        "type_declaration" => {
            let mut cursor = node.walk();
            let spec = node
                .named_children(&mut cursor)
                .find(|c| matches!(c.kind(), "type_spec" | "type_alias"))?;
            let kind = match spec.child_by_field_name("type").map(|t| t.kind()) {
                Some("struct_type") => ChunkKind::Struct,
                Some("interface_type") => ChunkKind::Interface,
                _ => ChunkKind::Type,
            };
            named(spec, text, kind)
        }
        _ => None,
    }
}

/// `(s *Server)` -> `Server`.
fn go_receiver_type(receiver: Node, text: &str) -> Option<String> {
    let mut cursor = receiver.walk();
    let param = receiver
        .named_children(&mut cursor)
        .find(|c| c.kind() == "parameter_declaration")?;
    let ty = node_text(param.child_by_field_name("type")?, text);
    let ty = ty.trim_start_matches('*');
    Some(ty.split('[').next().unwrap_or(ty).to_string())
}

fn java_definition(node: Node, text: &str) -> Option<(ChunkKind, String)> {
    match node.kind() {
        "class_declaration" => named(node, text, ChunkKind::Class),
        "record_declaration" => named(node, text, ChunkKind::Struct),
        "interface_declaration" | "annotation_type_declaration" => {
            named(node, text, ChunkKind::Interface)
        }
        "enum_declaration" => named(node, text, ChunkKind::Enum),
        "method_declaration" | "constructor_declaration" | "compact_constructor_declaration" => {
            named(node, text, ChunkKind::Method)
        }
        _ => None,
    }
}

fn c_definition(node: Node, text: &str) -> Option<(ChunkKind, String)> {
    match node.kind() {
        "function_definition" => {
            let name = declarator_name(node.child_by_field_name("declarator")?, text)?;
            Some((ChunkKind::Function, name))
        }
        "class_specifier" | "struct_specifier" | "union_specifier" | "enum_specifier" => {
            // Only a specifier with a body defines something; `struct x *p;` does not.
            node.child_by_field_name("body")?;
            let kind = match node.kind() {
                "class_specifier" => ChunkKind::Class,
                "enum_specifier" => ChunkKind::Enum,
                _ => ChunkKind::Struct,
            };
            named(node, text, kind)
        }
        // `struct point { ... };` and `typedef struct { ... } point;`
        "declaration" | "type_definition" | "field_declaration" => {
            let spec = node.child_by_field_name("type")?;
            let (kind, name) = c_definition(spec, text).or_else(|| {
                spec.child_by_field_name("body")?;
                let declarator = node.child_by_field_name("declarator")?;
                let kind = if spec.kind() == "enum_specifier" {
                    ChunkKind::Enum
                } else {
                    ChunkKind::Struct
                };
                Some((kind, declarator_name(declarator, text)?))
            })?;
            Some((kind, name))
        }
        "namespace_definition" => Some((
            ChunkKind::Module,
            field_text(node, "name", text).unwrap_or_else(|| "(anonymous namespace)".into()),
        )),
        "template_declaration" => {
            let mut cursor = node.walk();
            let inner = node
                .named_children(&mut cursor)
                .filter_map(|c| c_definition(c, text))
                .last();
            inner
        }
        _ => None,
    }
}

/// The declared name inside a C/C++ declarator chain (`*f(int)`, `Foo::bar(...)`).
fn declarator_name(mut node: Node, text: &str) -> Option<String> {
    for _ in 0..16 {
        match node.kind() {
            "identifier"
            | "field_identifier"
            | "qualified_identifier"
            | "destructor_name"
            | "operator_name"
            | "type_identifier"
            | "primitive_type" => {
                return Some(node_text(node, text).to_string());
            }
            _ => {
                node = match node.child_by_field_name("declarator") {
                    Some(inner) => inner,
                    None => {
                        let mut cursor = node.walk();
                        let first = node.named_children(&mut cursor).next()?;
                        first
                    }
                };
            }
        }
    }
    None
}
