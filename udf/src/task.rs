use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Name of the prompt set below, recorded in table metadata: a table embedded with one
/// set of prompts must be queried with the same set.
pub const PROMPT_SET: &str = "jina-code-v1";

/// Name of the Qwen3-Embedding prompt set ([`PromptStyle::Qwen3Embedding`]).
pub const QWEN3_PROMPT_SET: &str = "qwen3-embedding-v1";

/// How a model family wants its inputs prompted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PromptStyle {
    /// jina-code-embeddings: an instruction prefix for queries and for documents
    /// ([`TaskRole::prompt`]).
    #[default]
    JinaCode,
    /// Qwen3-Embedding: queries as `Instruct: {task}\nQuery:{text}`, documents as plain
    /// text (the tokenizer's post-processor appends `<|endoftext|>`).
    Qwen3Embedding,
}

impl PromptStyle {
    /// The name recorded in a table: a table embedded with one prompt set must be
    /// queried with the same set.
    pub fn prompt_set(self) -> &'static str {
        match self {
            PromptStyle::JinaCode => PROMPT_SET,
            PromptStyle::Qwen3Embedding => QWEN3_PROMPT_SET,
        }
    }

    /// The text that opens every input of `task` (empty for Qwen3 documents).
    pub fn prefix(self, task: TaskRole) -> String {
        match (self, task.role) {
            (PromptStyle::JinaCode, _) => task.prompt().to_string(),
            (PromptStyle::Qwen3Embedding, Role::Query) => {
                format!("Instruct: {}\nQuery:", task.task.instruction())
            }
            (PromptStyle::Qwen3Embedding, Role::Document) => String::new(),
        }
    }

    /// `text` as the model embeds it for `task`.
    pub fn apply(self, task: TaskRole, text: &str) -> String {
        let mut out = self.prefix(task);
        out.push_str(text);
        out
    }
}

/// A retrieval task of jina-code-embeddings; each has a query and a document prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Task {
    /// Natural-language query, code documents.
    #[default]
    Nl2Code,
    /// Technical question, answer documents.
    Qa,
    /// Code query, equivalent code documents.
    Code2Code,
    /// Code query, comment documents.
    Code2Nl,
    /// Start of code query, completion documents.
    Code2Completion,
}

/// Which side of a task a text is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    /// The searcher's text.
    #[default]
    Query,
    /// A stored text.
    Document,
}

/// A task together with a role: what decides the instruction prefix of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TaskRole {
    /// The task.
    pub task: Task,
    /// The side.
    pub role: Role,
}

impl Task {
    /// All tasks, in the model card's order.
    pub const ALL: [Task; 5] = [
        Task::Nl2Code,
        Task::Qa,
        Task::Code2Code,
        Task::Code2Nl,
        Task::Code2Completion,
    ];

    /// The task's name as the model card writes it.
    pub fn name(self) -> &'static str {
        match self {
            Task::Nl2Code => "nl2code",
            Task::Qa => "qa",
            Task::Code2Code => "code2code",
            Task::Code2Nl => "code2nl",
            Task::Code2Completion => "code2completion",
        }
    }

    /// What the task asks, as an instruction for models prompted with one sentence
    /// (Qwen3-Embedding's `Instruct:` line).
    pub fn instruction(self) -> &'static str {
        match self {
            Task::Nl2Code => {
                "Given a natural language query, retrieve the code snippets that answer it"
            }
            Task::Qa => "Given a technical question, retrieve the answers that address it",
            Task::Code2Code => "Given a code snippet, retrieve equivalent code snippets",
            Task::Code2Nl => "Given a code snippet, retrieve the comments that describe it",
            Task::Code2Completion => "Given the start of a code snippet, retrieve its completion",
        }
    }

    /// The task as a query.
    pub fn query(self) -> TaskRole {
        TaskRole {
            task: self,
            role: Role::Query,
        }
    }

    /// The task as a document.
    pub fn document(self) -> TaskRole {
        TaskRole {
            task: self,
            role: Role::Document,
        }
    }
}

impl TaskRole {
    /// The exact instruction prefix of the model card; the text follows it directly.
    pub fn prompt(self) -> &'static str {
        match (self.task, self.role) {
            (Task::Nl2Code, Role::Query) => {
                "Find the most relevant code snippet given the following query:\n"
            }
            (Task::Nl2Code, Role::Document) | (Task::Code2Code, Role::Document) => {
                "Candidate code snippet:\n"
            }
            (Task::Qa, Role::Query) => {
                "Find the most relevant answer given the following question:\n"
            }
            (Task::Qa, Role::Document) => "Candidate answer:\n",
            (Task::Code2Code, Role::Query) => {
                "Find an equivalent code snippet given the following code snippet:\n"
            }
            (Task::Code2Nl, Role::Query) => {
                "Find the most relevant comment given the following code snippet:\n"
            }
            (Task::Code2Nl, Role::Document) => "Candidate comment:\n",
            (Task::Code2Completion, Role::Query) => {
                "Find the most relevant completion given the following start of code snippet:\n"
            }
            (Task::Code2Completion, Role::Document) => "Candidate completion:\n",
        }
    }

    /// `text` with its instruction prefix.
    pub fn apply(self, text: &str) -> String {
        let prompt = self.prompt();
        let mut out = String::with_capacity(prompt.len() + text.len());
        out.push_str(prompt);
        out.push_str(text);
        out
    }
}

impl fmt::Display for TaskRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            Role::Query => "query",
            Role::Document => "document",
        };
        write!(f, "{}.{}", self.task.name(), role)
    }
}

impl FromStr for Task {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Task::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| Error::UnknownTask(s.to_string()))
    }
}

impl FromStr for TaskRole {
    type Err = Error;

    /// Parses `task`, `task.query`, `task.document` (also Jina's `task.passage` and
    /// sentence-transformers' `task_query` / `task_document`). A bare task is a query.
    fn from_str(s: &str) -> Result<Self> {
        let trimmed = s.trim();
        let (task, role) = match trimmed.rsplit_once(['.', '_']) {
            Some((task, role)) => (task, Some(role)),
            None => (trimmed, None),
        };
        let role = match role.map(|r| r.to_ascii_lowercase()) {
            None => Role::Query,
            Some(r) if r == "query" => Role::Query,
            Some(r) if r == "document" || r == "passage" => Role::Document,
            Some(_) => return Err(Error::UnknownTask(s.to_string())),
        };
        let task = task
            .parse::<Task>()
            .map_err(|_| Error::UnknownTask(s.to_string()))?;
        Ok(TaskRole { task, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_match_the_model_card() {
        assert_eq!(
            Task::Nl2Code.query().apply("sort a list"),
            "Find the most relevant code snippet given the following query:\nsort a list"
        );
        assert_eq!(
            Task::Code2Code.document().prompt(),
            "Candidate code snippet:\n"
        );
        assert_eq!(Task::Qa.document().prompt(), "Candidate answer:\n");
        assert_eq!(Task::Code2Nl.document().prompt(), "Candidate comment:\n");
        assert_eq!(
            Task::Code2Completion.query().prompt(),
            "Find the most relevant completion given the following start of code snippet:\n"
        );
    }

    #[test]
    fn qwen3_queries_carry_an_instruction_and_documents_are_plain() {
        let style = PromptStyle::Qwen3Embedding;
        assert_eq!(
            style.apply(Task::Nl2Code.query(), "sort a list"),
            "Instruct: Given a natural language query, retrieve the code snippets that \
             answer it\nQuery:sort a list"
        );
        assert_eq!(
            style.apply(Task::Nl2Code.document(), "fn f() {}"),
            "fn f() {}"
        );
        assert_eq!(style.prefix(Task::Qa.document()), "");
        assert_eq!(style.prompt_set(), "qwen3-embedding-v1");
        assert_eq!(
            PromptStyle::JinaCode.apply(Task::Qa.document(), "x"),
            "Candidate answer:\nx"
        );
    }

    #[test]
    fn task_names_parse_in_all_spellings() {
        for task in Task::ALL {
            for role in [task.query(), task.document()] {
                assert_eq!(role.to_string().parse::<TaskRole>().unwrap(), role);
            }
        }
        assert_eq!(
            "nl2code".parse::<TaskRole>().unwrap(),
            Task::Nl2Code.query()
        );
        assert_eq!(
            "qa.passage".parse::<TaskRole>().unwrap(),
            Task::Qa.document()
        );
        assert_eq!(
            "code2nl_document".parse::<TaskRole>().unwrap(),
            Task::Code2Nl.document()
        );
        for bad in ["", "nl2sql", "nl2code.answer", "nl2code.query.x"] {
            let err = bad.parse::<TaskRole>().unwrap_err();
            assert!(err.to_string().contains("unknown task"), "{bad}: {err}");
        }
    }
}
