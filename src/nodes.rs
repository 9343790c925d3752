//! Training on several machines ("nodes"): one process per node, each step's gradients
//! summed over the nodes through burn-collective's global level.
//!
//! # How a multi-node run works
//!
//! - A coordinator (`timebalance coordinator --port P`: burn-collective's global
//!   orchestrator) introduces the nodes to each other; tensors then travel peer to peer, each
//!   node serving its own on the port of its `--node-address` (WebSocket).
//! - Every node runs the same command (experiment, configuration, `--set`s; the data at its own
//!   path) with its own `--node-rank`, on one device. Every stage runs on every node. Training
//!   stages are data-parallel: node `r` of `n` takes the `r`-th part of every global batch
//!   (`crate::data::loader`, the same parts `--devices` gives devices), scales its gradient by
//!   `1 / n`, and the nodes sum the gradients (one all-reduce per step: every gradient
//!   flattened into one vector, [`NodePeer::sum_gradients`]), so every node applies the same
//!   step — the step one process takes on the whole batch, batch normalisation aside (each
//!   node's own batch statistics, as with `--devices`).
//! - Before a training stage starts and after it ends, each node's model is replaced by the
//!   mean over the nodes ([`NodePeer::mean_module`]). At the start the nodes hold the same
//!   weights already (the same seed draws them), and the mean keeps them identical in any case;
//!   at the end it averages the batch-norm running statistics, as burn-train's multi-device
//!   strategy averages each device's, so every node goes on to the next stage with the same
//!   model and writes the same files.
//! - Before each stage the nodes check that they agree on the configuration, the stage and its
//!   state ([`NodePeer::check_agree`]): a node that skipped a stage the others train, or
//!   resumed from another checkpoint, would otherwise leave them waiting forever.
//!
//! burn-collective 0.21.0's global barrier hangs after its first use; the crate is patched in
//! `vendor/` (`vendor/README.md`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_collective::{CollectiveConfig, PeerId, ReduceOperation};
use burn_communication::Address;

/// The coordinator's port unless told otherwise (the one `torchrun` uses).
pub const DEFAULT_COORDINATOR_PORT: u16 = 29500;

/// A host and port, `HOST:PORT`: where the coordinator listens, or where a node serves its
/// tensors (the host as the other nodes reach it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.contains("://") {
            return Err(format!("{s:?}: give HOST:PORT, without a scheme"));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected HOST:PORT, e.g. 10.0.0.1:29500"))?;
        if host.is_empty() {
            return Err(format!("{s:?}: the host is missing (HOST:PORT)"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{s:?}: {port:?} is not a port (1 to 65535)"))?;
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    /// burn-communication's WebSocket address of this endpoint.
    fn websocket(&self) -> Address {
        Address::from_str(&format!("ws://{self}")).expect("an Address parses from any string")
    }
}

/// This process's place in a multi-node run: the command line's `--nodes`, `--node-rank`,
/// `--coordinator` and `--node-address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeGroup {
    /// How many nodes train together.
    pub nodes: usize,
    /// This node's rank, `0..nodes`.
    pub rank: usize,
    /// Where the coordinator listens.
    pub coordinator: Endpoint,
    /// Where the other nodes reach this one (it listens on the port, on every interface).
    pub address: Endpoint,
}

impl NodeGroup {
    /// A group, checked: at least two nodes, the rank one of them.
    pub fn new(
        nodes: usize,
        rank: usize,
        coordinator: Endpoint,
        address: Endpoint,
    ) -> Result<Self> {
        if nodes < 2 {
            bail!(
                "--nodes {nodes}: a multi-node run has at least 2 nodes (leave --nodes out for one)"
            );
        }
        if rank >= nodes {
            bail!(
                "--node-rank {rank}: the ranks of {nodes} nodes are 0 to {}",
                nodes - 1
            );
        }
        // The coordinator and this node's tensor server each listen on their port; given the
        // same one, the node's peers reach the coordinator for tensors (404s) and the run dies
        // at its first exchange.
        if address == coordinator {
            bail!(
                "--node-address {address} is the coordinator's address: a node serves tensors on a port of its own"
            );
        }
        Ok(Self {
            nodes,
            rank,
            coordinator,
            address,
        })
    }

    /// What the stages and training steps carry.
    pub fn peer(&self) -> NodePeer {
        NodePeer {
            rank: self.rank,
            nodes: self.nodes,
        }
    }

    /// Register this node, on `device`, with the coordinator (burn-collective retries until
    /// the coordinator answers and returns once every node has registered). Every collective
    /// call of the run goes through backend `B`; the membership ends when the returned value
    /// is dropped.
    pub fn join<B: Backend>(&self, device: &B::Device) -> Result<Membership<B>> {
        let nodes = u32::try_from(self.nodes).context("--nodes")?;
        let config = CollectiveConfig::default()
            .with_num_devices(1)
            .with_num_nodes(nodes)
            .with_global_address(self.coordinator.websocket())
            .with_node_address(self.address.websocket())
            .with_data_service_port(self.address.port);
        burn_collective::register::<B>(self.peer().id(), device.clone(), config).map_err(|e| {
            anyhow!(
                "node {} joining {} nodes through the coordinator at {}: {e:?}",
                self.rank,
                self.nodes,
                self.coordinator
            )
        })?;
        Ok(Membership {
            peer: self.peer(),
            backend: PhantomData,
        })
    }
}

/// A registered node; leaves the collective when dropped.
pub struct Membership<B: Backend> {
    peer: NodePeer,
    backend: PhantomData<B>,
}

impl<B: Backend> Membership<B> {
    pub fn peer(&self) -> NodePeer {
        self.peer
    }
}

impl<B: Backend> Drop for Membership<B> {
    fn drop(&mut self) {
        if let Err(e) = burn_collective::finish_collective::<B>(self.peer.id()) {
            eprintln!(
                "warning: node {} leaving the collective: {e:?}",
                self.peer.rank
            );
        }
    }
}

/// This process as one node of a registered group ([`NodeGroup::join`]). Every method is a
/// collective call: every node makes the same calls in the same order, or they wait forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePeer {
    pub rank: usize,
    pub nodes: usize,
}

impl NodePeer {
    /// burn-collective's peer id: the rank (one device per node).
    fn id(self) -> PeerId {
        PeerId(self.rank as u32)
    }

    /// The element-wise sum of `values` over the nodes.
    pub fn sum<B: Backend>(self, values: Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        let summed = burn_collective::all_reduce::<B>(
            self.id(),
            values.into_primitive().tensor(),
            ReduceOperation::Sum,
        )
        .map_err(|e| anyhow!("node {}: summing over the nodes: {e:?}", self.rank))?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(summed)))
    }

    /// Fails unless every node passes the same `values` (`what` names them in the error).
    ///
    /// The values travel as their bytes in `f32` (exact), with their squares: per byte, the
    /// nodes agree exactly when `n · Σv² = (Σv)²` (the equality case of Cauchy–Schwarz).
    pub fn check_agree<B: Backend>(
        self,
        what: &str,
        values: &[u32],
        device: &B::Device,
    ) -> Result<()> {
        let bytes: Vec<f32> = values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .map(f32::from)
            .collect();
        let squares = bytes.iter().map(|b| b * b);
        let exchanged: Vec<f32> = bytes.iter().copied().chain(squares).collect();
        let len = exchanged.len();
        let mine = Tensor::<B, 1>::from_data(TensorData::new(exchanged, [len]), device);
        let sums = self
            .sum(mine)?
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| anyhow!("reading the nodes' sums: {e:?}"))?;
        let (sum, sum_of_squares) = sums.split_at(bytes.len());
        let nodes = self.nodes as f64;
        let agree = sum
            .iter()
            .zip(sum_of_squares)
            .all(|(&s, &q)| nodes * f64::from(q) == f64::from(s).powi(2));
        if !agree {
            bail!(
                "the {} nodes disagree on {what} (node {} has {values:?}): start every node with the same command, configuration and run state",
                self.nodes,
                self.rank
            );
        }
        Ok(())
    }

    /// `module` with every float tensor (parameters and running statistics) replaced by its
    /// mean over the nodes: one all-reduce of them all, flattened in the module's order.
    pub fn mean_module<B: Backend, M: Module<B>>(self, module: M) -> Result<M> {
        self.mean_via::<B, Plain, M>(module)
    }

    /// [`Self::mean_module`] of a module with autodiff: exchanged through the inner backend
    /// (the one the node registered with), each parameter still requiring gradients after if
    /// it did before.
    pub fn mean_autodiff_module<B: AutodiffBackend, M: AutodiffModule<B>>(
        self,
        module: M,
    ) -> Result<M> {
        self.mean_via::<B, Inner, M>(module)
    }

    fn mean_via<B: Backend, X: Exchange<B>, M: Module<B>>(self, module: M) -> Result<M> {
        let mut flatten = Flatten::<B, X> {
            parts: Vec::new(),
            exchange: PhantomData,
        };
        module.visit(&mut flatten);
        if flatten.parts.is_empty() {
            return Ok(module);
        }
        let mean = self
            .sum(Tensor::cat(flatten.parts, 0))?
            .div_scalar(self.nodes as f64);
        Ok(module.map(&mut Unflatten::<B, X> {
            values: mean,
            at: 0,
            exchange: PhantomData,
        }))
    }

    /// Replace the gradient of each of `model`'s parameters in `grads` by its sum over the
    /// nodes: one all-reduce of every gradient flattened into one vector, in the order of the
    /// module's parameters (each parameter id once), which is the same on every node.
    pub fn sum_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
        self,
        model: &M,
        grads: &mut GradientsParams,
    ) -> Result<()> {
        let mut collect = CollectGradients::<B> {
            grads,
            seen: HashSet::new(),
            parts: Vec::new(),
            slots: HashMap::new(),
            len: 0,
        };
        model.visit(&mut collect);
        let CollectGradients { parts, slots, .. } = collect;
        if parts.is_empty() {
            return Ok(());
        }
        let summed = self.sum(Tensor::cat(parts, 0))?;
        model.visit(&mut RegisterGradients::<B> {
            grads,
            summed,
            slots,
        });
        Ok(())
    }
}

/// A stable 32-bit fingerprint of `text` (FNV-1a), for [`NodePeer::check_agree`]: the same
/// on every machine and Rust version, unlike `std`'s hasher.
pub fn fingerprint(text: &str) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    text.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(PRIME)
    })
}

/// Serve the coordinator of multi-node runs (burn-collective's global orchestrator) on `port`
/// of every interface, until the process is interrupted.
pub fn serve_coordinator(port: u16) -> Result<()> {
    // burn-collective logs a failed bind and returns normally: try the port first, so that a
    // port in use is an error here.
    std::net::TcpListener::bind(("0.0.0.0", port))
        .with_context(|| format!("coordinator: listening on port {port}"))?;
    let runtime = tokio::runtime::Runtime::new().context("coordinator: starting its runtime")?;
    runtime.block_on(burn_collective::start_global_orchestrator(port));
    Ok(())
}

/// How a module's tensors travel: on the backend the node registered with (burn-collective
/// keeps one registration per backend type), and back.
trait Exchange<B: Backend> {
    type Wire: Backend;
    fn to_wire<const D: usize>(tensor: Tensor<B, D>) -> Tensor<Self::Wire, D>;
    /// `tensor` back in `like`'s place (for autodiff: requiring gradients if `like` did).
    fn from_wire<const D: usize>(
        tensor: Tensor<Self::Wire, D>,
        like: &Tensor<B, D>,
    ) -> Tensor<B, D>;
}

/// A module without autodiff: its tensors travel as they are.
struct Plain;

impl<B: Backend> Exchange<B> for Plain {
    type Wire = B;
    fn to_wire<const D: usize>(tensor: Tensor<B, D>) -> Tensor<B, D> {
        tensor
    }
    fn from_wire<const D: usize>(tensor: Tensor<B, D>, _like: &Tensor<B, D>) -> Tensor<B, D> {
        tensor
    }
}

/// A module with autodiff: its tensors travel on the inner backend. Going back through
/// `AutodiffModule::valid` and `from_inner` instead would lose which parameters require
/// gradients (`Param::map` takes it from the inner tensor, which never does), and the model
/// would not train.
struct Inner;

impl<B: AutodiffBackend> Exchange<B> for Inner {
    type Wire = B::InnerBackend;
    fn to_wire<const D: usize>(tensor: Tensor<B, D>) -> Tensor<B::InnerBackend, D> {
        tensor.inner()
    }
    fn from_wire<const D: usize>(
        tensor: Tensor<B::InnerBackend, D>,
        like: &Tensor<B, D>,
    ) -> Tensor<B, D> {
        Tensor::from_inner(tensor).set_require_grad(like.is_require_grad())
    }
}

/// Every float tensor a module visits, flattened, in visiting order.
struct Flatten<B: Backend, X: Exchange<B>> {
    parts: Vec<Tensor<X::Wire, 1>>,
    exchange: PhantomData<X>,
}

impl<B: Backend, X: Exchange<B>> ModuleVisitor<B> for Flatten<B, X> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = X::to_wire(param.val());
        let len = tensor.shape().num_elements();
        self.parts.push(tensor.reshape([len]));
    }
}

/// Puts back what [`Flatten`] took, from `values`, in the same order.
struct Unflatten<B: Backend, X: Exchange<B>> {
    values: Tensor<X::Wire, 1>,
    at: usize,
    exchange: PhantomData<X>,
}

impl<B: Backend, X: Exchange<B>> ModuleMapper<B> for Unflatten<B, X> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let values = &self.values;
        let at = &mut self.at;
        param.map(|tensor| {
            let shape = tensor.shape();
            let len = shape.num_elements();
            let part = values.clone().slice(*at..*at + len).reshape(shape);
            *at += len;
            X::from_wire(part, &tensor)
        })
    }
}

/// Each parameter's gradient (each id once), flattened, and where it lies in the whole.
struct CollectGradients<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    seen: HashSet<ParamId>,
    parts: Vec<Tensor<B::InnerBackend, 1>>,
    /// Parameter id → (offset, length) in the concatenated gradients.
    slots: HashMap<ParamId, (usize, usize)>,
    len: usize,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for CollectGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.seen.insert(param.id) {
            return;
        }
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let len = grad.shape().num_elements();
            self.slots.insert(param.id, (self.len, len));
            self.parts.push(grad.reshape([len]));
            self.len += len;
        }
    }
}

/// Registers each parameter's part of the summed gradients in place of its own.
struct RegisterGradients<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    summed: Tensor<B::InnerBackend, 1>,
    slots: HashMap<ParamId, (usize, usize)>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for RegisterGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some((at, len)) = self.slots.remove(&param.id) else {
            return;
        };
        let Some(own) = self.grads.remove::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let summed = self.summed.clone().slice(at..at + len).reshape(own.shape());
        self.grads.register::<B::InnerBackend, D>(param.id, summed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_host_and_port() {
        let e: Endpoint = "10.0.0.1:29500".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("10.0.0.1", 29500));
        assert_eq!(e.to_string(), "10.0.0.1:29500");
        assert_eq!(e.websocket().to_string(), "ws://10.0.0.1:29500");
        for bad in ["10.0.0.1", ":29500", "host:0", "host:70000", "ws://host:1"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_group_needs_two_nodes_and_a_rank_among_them() {
        let e = |s: &str| s.parse::<Endpoint>().unwrap();
        let group = |n, r| NodeGroup::new(n, r, e("a:1"), e("b:2"));
        assert_eq!(group(2, 1).unwrap().peer(), NodePeer { rank: 1, nodes: 2 });
        assert!(group(1, 0).is_err());
        let err = group(2, 2).unwrap_err().to_string();
        assert!(err.contains("0 to 1"), "{err}");
        let err = NodeGroup::new(2, 0, e("a:1"), e("a:1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("coordinator's address"), "{err}");
        assert!(NodeGroup::new(2, 0, e("a:1"), e("a:2")).is_ok());
    }

    #[test]
    fn fingerprints_are_fnv1a() {
        // FNV-1a's published test vectors.
        assert_eq!(fingerprint(""), 0x811c_9dc5);
        assert_eq!(fingerprint("a"), 0xe40c_292c);
        assert_eq!(fingerprint("foobar"), 0xbf9c_f968);
    }
}
