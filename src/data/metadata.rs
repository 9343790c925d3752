//! Many videos' metadata, read in parallel (`data check`).

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread;

use super::video::{VideoError, VideoInfo, read_info};

/// Reads every video's metadata on `threads` threads (for a `data check` command), returning results in
/// input order. `progress(done, total)` is called on the calling thread after each video, so it
/// may print or update a progress bar without synchronisation.
pub fn read_infos(
    paths: &[PathBuf],
    threads: usize,
    mut progress: impl FnMut(usize, usize),
) -> Vec<Result<VideoInfo, VideoError>> {
    let total = paths.len();
    let mut results: Vec<Option<Result<VideoInfo, VideoError>>> =
        std::iter::repeat_with(|| None).take(total).collect();
    let next = AtomicUsize::new(0);
    // Each thread claims the next unread index, so a slow file does not hold up the rest.
    let claim_and_read = |tx: &Sender<(usize, Result<VideoInfo, VideoError>)>| loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(path) = paths.get(index) else { return };
        let info = catch_unwind(|| read_info(path)).unwrap_or_else(|panic| {
            Err(VideoError::Decode {
                path: path.clone(),
                message: format!("reading the metadata panicked: {}", panic_message(&*panic)),
            })
        });
        if tx.send((index, info)).is_err() {
            return;
        }
    };
    thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        let mut started = 0;
        for i in 0..threads.clamp(1, total.max(1)) {
            let tx = tx.clone();
            let work = &claim_and_read;
            let spawned = thread::Builder::new()
                .name(format!("video-info-{i}"))
                .spawn_scoped(scope, move || work(&tx));
            started += usize::from(spawned.is_ok());
        }
        if started == 0 {
            // No thread could be started: read on this thread instead.
            claim_and_read(&tx);
        }
        drop(tx);
        for (done, (index, info)) in rx.iter().enumerate() {
            results[index] = Some(info);
            progress(done + 1, total);
        }
    });
    results
        .into_iter()
        .zip(paths)
        .map(|(r, path)| r.unwrap_or_else(|| Err(not_read(path))))
        .collect()
}

fn not_read(path: &Path) -> VideoError {
    VideoError::Decode {
        path: path.to_path_buf(),
        message: "not read: the metadata thread failed".to_string(),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_videos::{TEST_FRAMES, TEST_SIZE, fixture};

    #[test]
    fn read_infos_keeps_order_and_reports_errors() {
        let f = fixture();
        let mut paths: Vec<PathBuf> = f.good.iter().map(|(p, _)| p.clone()).collect();
        paths.insert(2, f.zero.clone());
        let mut calls = Vec::new();
        let infos = read_infos(&paths, 2, |done, total| calls.push((done, total)));
        assert_eq!(calls.len(), paths.len());
        assert!(
            calls
                .iter()
                .enumerate()
                .all(|(i, &c)| c == (i + 1, paths.len()))
        );
        assert!(infos[2].is_err());
        for (i, info) in infos.iter().enumerate().filter(|&(i, _)| i != 2) {
            let info = info.as_ref().expect("good video reads");
            assert_eq!(info.frame_count, TEST_FRAMES, "video {i}");
            assert_eq!((info.width, info.height), (TEST_SIZE, TEST_SIZE));
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_reported_as_not_a_regular_file_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("clip.avi");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        // Opening a FIFO without a writer blocks: read it on a thread and give it a deadline.
        let (send, receive) = std::sync::mpsc::channel();
        let paths = vec![fifo.clone(), dir.path().to_path_buf()];
        std::thread::spawn(move || {
            let _ = send.send(read_infos(&paths, 1, |_, _| {}));
        });
        let infos = receive
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("reading a FIFO's metadata must not block");
        let errors: Vec<String> = infos
            .iter()
            .map(|i| i.as_ref().unwrap_err().to_string())
            .collect();
        assert!(
            errors[0].contains("not a regular file (a FIFO)"),
            "{errors:?}"
        );
        assert!(errors[1].contains("(a directory)"), "{errors:?}");
    }
}
