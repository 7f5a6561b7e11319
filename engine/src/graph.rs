//! The dataflow graph of a job: nodes (a source or an operator) with their parallelism,
//! each fed by one input over an edge that says how rows move between instances.
//!
//! Nodes joined by a `Forward` edge with the same parallelism run chained in one task,
//! with no channel between them. `Hash` and `Single` edges cross tasks over bounded
//! channels.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::manifest::OperatorState;
use crate::connector::{SinkConnector, SourceConnector};
use crate::operator::OperatorFactory;
use crate::source::SourcePrep;

/// Index of a node in its graph.
pub type NodeId = usize;

/// How a node receives the output of its input node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edge {
    /// Instance i feeds instance i, in the same task.
    Forward,
    /// Rows go to the instance chosen by the hash of these columns.
    Hash(Vec<usize>),
    /// Every row goes to instance 0 (a global window, no keys).
    Single,
}

/// What a node does.
pub enum NodeKind {
    Source {
        table: String,
        connector: Arc<dyn SourceConnector>,
        prep: Arc<SourcePrep>,
        /// A partition with no data for this long stops holding the watermark back.
        idle_timeout: Option<Duration>,
    },
    Operator {
        factory: Arc<dyn OperatorFactory>,
    },
}

/// A vertex of the graph.
pub struct Node {
    /// What the node computes, for `explain` and messages.
    pub name: String,
    /// A stable id derived from the job's structure (the statement and the node's place in
    /// it), which checkpoints match state by: it does not change with paths, options or
    /// expressions, only with the job's shape.
    pub uid: String,
    /// What the node's state holds (`"window" → "TUMBLE(1 min)"`, ...), for nodes that
    /// keep state: a checkpoint whose record differs cannot be restored into this node.
    /// Empty for a stateless node.
    pub state: BTreeMap<String, String>,
    pub parallelism: usize,
    pub kind: NodeKind,
    pub input: Option<(NodeId, Edge)>,
    /// A second input (the right side of a join), always over an exchange; its rows reach
    /// the operator through [`crate::operator::Operator::process_side`] with side 1.
    pub second_input: Option<(NodeId, Edge)>,
}

/// A job's dataflow.
#[derive(Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// The sink nodes with their tables, which commit what completed checkpoints cover.
    pub sinks: Vec<(NodeId, Arc<dyn SinkConnector>)>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Nodes fed by `id`, with their edges.
    pub fn consumers(&self, id: NodeId) -> impl Iterator<Item = (NodeId, &Edge)> {
        self.consumer_inputs(id).map(|(node, edge, _)| (node, edge))
    }

    /// Nodes fed by `id`, with their edges and which of their inputs (0, or 1 for a second
    /// input) `id` feeds; a node that reads `id` on both inputs (a self-join) comes twice.
    pub fn consumer_inputs(&self, id: NodeId) -> impl Iterator<Item = (NodeId, &Edge, usize)> {
        self.nodes.iter().enumerate().flat_map(move |(i, n)| {
            [&n.input, &n.second_input]
                .into_iter()
                .enumerate()
                .filter_map(move |(side, input)| match input {
                    Some((from, edge)) if *from == id => Some((i, edge, side)),
                    _ => None,
                })
        })
    }

    /// The sinks by stable id, with the connectors that commit what checkpoints cover.
    pub fn committers(&self) -> Vec<(String, Arc<dyn SinkConnector>)> {
        self.sinks
            .iter()
            .map(|(node, sink)| (self.nodes[*node].uid.clone(), Arc::clone(sink)))
            .collect()
    }

    /// True if the node starts a task: a source, or a node fed over a channel.
    pub fn starts_task(&self, id: NodeId) -> bool {
        !matches!(self.nodes[id].input, Some((_, Edge::Forward)))
    }

    /// The stateful nodes as a checkpoint records them: stable id and what the state
    /// holds. The parallelism is left out: a checkpoint restores at any parallelism.
    pub fn operator_states(&self) -> Vec<OperatorState> {
        self.nodes
            .iter()
            .filter(|n| !n.state.is_empty())
            .map(|n| OperatorState {
                id: n.uid.clone(),
                holds: n.state.clone(),
            })
            .collect()
    }

    /// The human-readable plan printed by `sluice explain`: one block per task, each node
    /// under the task it runs in, with its input edge.
    pub fn explain(&self) -> String {
        let mut s = String::new();
        for (root, node) in self
            .nodes
            .iter()
            .enumerate()
            .filter(|(id, _)| self.starts_task(*id))
        {
            let _ = writeln!(s, "task (parallelism {}):", node.parallelism);
            self.explain_chain(root, 1, &mut s);
        }
        s
    }

    fn explain_chain(&self, id: NodeId, depth: usize, s: &mut String) {
        let node = &self.nodes[id];
        let _ = write!(s, "{}[{id}] {}", "  ".repeat(depth), node.name);
        if !node.state.is_empty() {
            let _ = write!(s, "  (state: {})", node.uid);
        }
        for input in [&node.input, &node.second_input] {
            match input {
                None => {}
                Some((from, Edge::Forward)) => {
                    let _ = write!(s, "  <- [{from}] forward (chained)");
                }
                Some((from, Edge::Hash(cols))) => {
                    let _ = write!(s, "  <- [{from}] hash by columns {cols:?}");
                }
                Some((from, Edge::Single)) => {
                    let _ = write!(s, "  <- [{from}] single (all to one instance)");
                }
            }
        }
        let _ = writeln!(s);
        for (consumer, edge) in self.consumers(id) {
            if *edge == Edge::Forward {
                self.explain_chain(consumer, depth + 1, s);
            }
        }
    }
}
