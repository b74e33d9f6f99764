//! Test support: runs one transform inside a real [`Pipeline`] whose every output port
//! feeds a collecting sink, so tests see exactly what the transform emitted and on which
//! port (the [`Emitter`](sluice_engine::pipeline::Emitter) itself is engine-private).

use sluice_engine::batch::Batch;
use sluice_engine::metrics::{ComponentKind, Registry};
use sluice_engine::pipeline::{Node, Operator, Pipeline, ShardSink, Transform};
use std::sync::{Arc, Mutex};

type Collected = Arc<Mutex<Vec<(u8, Batch)>>>;

struct Collect {
    port: u8,
    into: Collected,
}

impl ShardSink for Collect {
    fn consume(&mut self, batch: Batch) -> Result<(), Batch> {
        self.into
            .lock()
            .expect("test lock")
            .push((self.port, batch));
        Ok(())
    }
}

pub struct Harness {
    pipeline: Pipeline,
    collected: Collected,
}

impl Harness {
    /// `ports` output ports are connected (0 = main, 1 = dropped, ...).
    pub fn new(transform: Box<dyn Transform>, ports: u8) -> Harness {
        let registry = Registry::new();
        let collected: Collected = Arc::default();
        let mut nodes = vec![Node {
            id: "t".into(),
            op: Operator::Transform(transform),
            metrics: registry.component("t", ComponentKind::Transform, "test"),
            outputs: (0..ports).map(|p| vec![u16::from(p) + 1]).collect(),
            exchange_keys: None,
        }];
        for port in 0..ports {
            let id = format!("sink{port}");
            nodes.push(Node {
                metrics: registry.component(&id, ComponentKind::Sink, "test"),
                id,
                op: Operator::Sink(Box::new(Collect {
                    port,
                    into: collected.clone(),
                })),
                outputs: vec![],
                exchange_keys: None,
            });
        }
        Harness {
            pipeline: Pipeline::new(nodes, vec![vec![0]]),
            collected,
        }
    }

    pub fn push(&mut self, batch: Batch) {
        self.pipeline.push(0, batch);
    }

    pub fn tick(&mut self, last: bool) {
        self.pipeline.tick(std::time::Instant::now(), last);
    }

    /// Everything emitted since the last call, as (port, batch), in order.
    pub fn take(&mut self) -> Vec<(u8, Batch)> {
        std::mem::take(&mut *self.collected.lock().expect("test lock"))
    }

    /// The raw lines of everything emitted on `port` since the last call (other ports'
    /// batches are discarded).
    pub fn take_lines(&mut self, port: u8) -> Vec<String> {
        let mut lines = Vec::new();
        for (p, b) in self.take() {
            if p != port {
                continue;
            }
            for ev in &b.events {
                lines.push(String::from_utf8_lossy(b.line(ev)).into_owned());
            }
        }
        lines
    }
}
