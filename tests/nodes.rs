//! Multi-node training (`--nodes`, `timebalance::nodes`) through the command line: two
//! processes on this machine and a coordinator (`timebalance coordinator`) between them.
//!
//! Two nodes must train a stage as one process does on two devices with the same global
//! batch (`--devices cpu,cpu`, itself checked against one device in
//! `pipeline::learning::devices`): the same part of every global batch per node or device,
//! the same batch statistics per part, the same summed gradients, the same averaged running
//! statistics at the end. Only the order of the sums differs.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use timebalance::checkpoint::load_module;
use timebalance::model::VideoClassifier;
use timebalance::pipeline::config::ExperimentConfig;

use crate::common::rel_l2_f32;
use crate::pipeline::{command, run, text};

const NODES: usize = 2;
/// The stage both runs train (from scratch, on the labeled videos: 8 of `TINY`'s, global
/// batches of 4) and its epochs (the second epoch starts from weights the first one changed).
const STAGE: &str = "baseline";
const EPOCHS: &str = "baseline.epochs=2";
/// A learning rate that leaves every weight where it started (the smallest positive rate is
/// far below a weight's float resolution): the untrained model, to show the others trained.
const NO_STEP: &str = "baseline.lr=1e-30";
/// Relative L2 distance allowed between the two nodes' model and the two devices' (float
/// summation order only).
const TOLERANCE: f64 = 1e-5;
/// How long a node may take before the test gives up on it (a node left waiting for a peer
/// waits forever).
const NODE_DEADLINE: Duration = Duration::from_secs(600);

/// Ports [`free_port`] has handed out in this test process.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free TCP port of this machine, never one handed out before in this process.
///
/// The port is free when asked and released at once, so the kernel may offer it again before
/// the process it was meant for binds it: it once gave node 1 the port of the coordinator
/// spawned a moment before, whose "404 Not Found" node 0 then met at its first tensor
/// transfer, and this test failed about once in 200 starts under load (CI, stop 39).
fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        let port = listener.local_addr().expect("its address").port();
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// A child process that is killed when dropped (the coordinator, or a node left waiting).
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start node `rank` of a [`NODES`]-node run of `STAGE` into `out`, its output into
/// `out.log` beside it.
fn node(rank: usize, coordinator: u16, out: &Path, sets: &[&str]) -> (Spawned, PathBuf) {
    let log = out.with_extension("log");
    let file = File::create(&log).expect("node log");
    let child = command(&[STAGE, "synthetic"], out, sets)
        .args([
            "--nodes",
            &NODES.to_string(),
            "--node-rank",
            &rank.to_string(),
        ])
        .args(["--coordinator", &format!("127.0.0.1:{coordinator}")])
        .args(["--node-address", &format!("127.0.0.1:{}", free_port())])
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file)
        .spawn()
        .expect("starting a node");
    (Spawned(child), log)
}

/// Wait for a node until [`NODE_DEADLINE`]: its exit status and what it printed.
fn finish(mut node: Spawned, log: &Path) -> (bool, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = node.0.try_wait().expect("waiting for a node") {
            break Some(status);
        }
        if started.elapsed() > NODE_DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let printed = std::fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(status) => (status.success(), printed),
        None => panic!("a node did not finish in {NODE_DEADLINE:?}:\n{printed}"),
    }
}

/// Wait for every node ([`finish`]) before any is judged: a node that fails first closes its
/// connections, so another node's error shows only the symptom.
fn finish_all(nodes: Vec<(Spawned, PathBuf)>) -> Vec<(bool, String)> {
    nodes
        .into_iter()
        .map(|(child, log)| finish(child, &log))
        .collect()
}

/// What every node printed, each under its rank and outcome, for a failure's message.
fn every_log(finished: &[(bool, String)]) -> String {
    finished
        .iter()
        .enumerate()
        .map(|(rank, (ok, printed))| {
            let how = if *ok { "succeeded" } else { "failed" };
            format!("---- node {rank} ({how}):\n{printed}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The coordinator on a free port.
fn coordinator() -> (Spawned, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_timebalance"))
        .args(["coordinator", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the coordinator");
    (Spawned(child), port)
}

/// A trained model's values, in module order.
#[derive(Default)]
struct Values {
    /// Every float tensor: parameters and running statistics.
    all: Vec<f32>,
    /// The parameters the optimiser trains (loaded with autodiff: they require gradients).
    trained: Vec<f32>,
}

impl<B: Backend> ModuleVisitor<B> for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let trained = tensor.is_require_grad();
        let data = tensor.into_data().to_vec::<f32>().expect("f32 values");
        if trained {
            self.trained.extend(&data);
        }
        self.all.extend(data);
    }
}

/// The values of the model `STAGE` trained in the run directory `run`.
fn trained_values(run: &Path) -> Values {
    let text = std::fs::read_to_string(run.join("config.toml")).expect("the run's config");
    let config = ExperimentConfig::from_toml(&text, "config.toml", &[]).expect("config");
    let classes = std::fs::read_to_string(run.join("classes.txt"))
        .expect("classes")
        .lines()
        .count();
    let device = FlexDevice;
    let model = load_module(
        config.model.classifier::<Autodiff<Flex>>(classes, &device),
        &run.join(STAGE).join("model.mpk"),
        &device,
    )
    .expect("the trained model");
    let mut values = Values::default();
    VideoClassifier::visit(&model, &mut values);
    assert!(
        !values.trained.is_empty(),
        "no parameter requires gradients"
    );
    values
}

#[test]
fn two_nodes_train_as_one_process_on_two_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let (_coordinator, port) = coordinator();
    let nodes: Vec<_> = (0..NODES)
        .map(|rank| {
            node(
                rank,
                port,
                &tmp.path().join(format!("node{rank}")),
                &[EPOCHS],
            )
        })
        .collect();
    let devices = tmp.path().join("devices");
    let reference = run(
        &[STAGE, "synthetic", "--devices", "cpu,cpu"],
        &devices,
        &[EPOCHS],
    );
    assert!(reference.status.success(), "{}", text(&reference));
    let untrained = tmp.path().join("untrained");
    let start = run(&[STAGE, "synthetic"], &untrained, &[EPOCHS, NO_STEP]);
    assert!(start.status.success(), "{}", text(&start));
    let finished = finish_all(nodes);
    assert!(
        finished.iter().all(|(ok, _)| *ok),
        "a node failed:\n{}",
        every_log(&finished)
    );
    let run_dir = |dir: &Path| dir.join("synthetic");
    let node0 = trained_values(&run_dir(&tmp.path().join("node0")));
    let node1 = trained_values(&run_dir(&tmp.path().join("node1")));
    let two_devices = trained_values(&run_dir(&devices));
    let untrained = trained_values(&run_dir(&untrained));
    // The stage trains. (A multi-node run whose parameters did not train, as a first version
    // of `mean_autodiff_module` made them, ended 1.9e-2 away, every batch-norm shift still 0.)
    let moved = rel_l2_f32(&two_devices.trained, &untrained.trained);
    eprintln!("training moved the parameters by {moved:.2e} (relative L2)");
    assert!(
        moved > 100.0 * TOLERANCE,
        "training moved the weights by only {moved:.2e}"
    );
    assert!(
        node0.all == node1.all,
        "the nodes end with different models ({:.2e} apart)",
        rel_l2_f32(&node0.all, &node1.all)
    );
    let distance = rel_l2_f32(&node0.all, &two_devices.all);
    eprintln!("two nodes vs two devices: relative L2 distance {distance:.2e}");
    assert!(
        distance < TOLERANCE,
        "two nodes end {distance:.2e} (relative L2) away from two devices"
    );
    let log = std::fs::read_to_string(run_dir(&tmp.path().join("node1")).join("log.txt"))
        .expect("node 1's log");
    assert!(log.contains("node 1 of 2"), "{log}");
}

#[test]
fn nodes_that_disagree_stop_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let (_coordinator, port) = coordinator();
    let three = "baseline.epochs=3";
    let nodes: Vec<_> = (0..NODES)
        .map(|rank| {
            let sets = if rank == 0 { EPOCHS } else { three };
            node(rank, port, &tmp.path().join(format!("node{rank}")), &[sets])
        })
        .collect();
    let finished = finish_all(nodes);
    for (rank, (ok, printed)) in finished.iter().enumerate() {
        assert!(
            !ok,
            "node {rank} trained with another configuration:\n{}",
            every_log(&finished)
        );
        assert!(
            printed.contains("nodes disagree on [baseline] the configuration"),
            "node {rank} did not stop on the disagreement:\n{}",
            every_log(&finished)
        );
    }
    // Nothing was trained.
    for rank in 0..NODES {
        let stage = tmp.path().join(format!("node{rank}/synthetic/{STAGE}"));
        assert!(!stage.join("model.mpk").exists(), "{}", stage.display());
    }
}
