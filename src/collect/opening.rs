//! Opening a run: the lock, the state, the output reconciled with the last commit, and the
//! journal of delivered events.

use super::*;

pub(super) struct Checkpointing {
    pub(super) file: StateFile,
    pub(super) state: State,
    pub(super) _lock: RunLock,
}

pub(super) type Opened = (Option<Checkpointing>, Sink, Seen);

pub(super) fn open_state_and_output(setup: &RunSetup<'_>) -> anyhow::Result<Opened> {
    let Start::Stateful(settings) = setup.start else {
        let stop = Some(setup.signals.stop_flag());
        let (sink, _) = sink::open_stoppable(&setup.output.target, None, false, stop)?;
        return Ok((None, sink, Seen::in_memory(STATELESS_DEDUP)));
    };
    let lock = RunLock::acquire(&settings.path)?;
    let file = StateFile::new(&settings.path);
    file.remove_stale_temporary();
    let mut state = file
        .load()?
        .unwrap_or_else(|| State::new(&setup.api.host, &setup.config_ids()));
    // The state moves past what stdout takes: stdout must be someone's.
    let stop = Some(setup.signals.stop_flag());
    let (mut sink, reconciled) =
        sink::open_stoppable(&setup.output.target, state.output.as_ref(), true, stop)?;
    if matches!(setup.output.target, OutputTarget::File(_)) && reconciled != Reconciled::Continued {
        // Commit where this file starts before the first write, so that what a crash or a full
        // disk leaves behind in it is cut by the next run, even after a first run.
        state.record_output(sink.commit()?);
        file.save(&state)
            .context("recording the output file's position")?;
    }
    match &reconciled {
        Reconciled::CutTail { bytes } => tracing::warn!(
            code = "recovered_crash",
            "the previous run stopped between writing and committing: cut its last {bytes} \
             uncommitted bytes from the output file; those events are fetched again"
        ),
        Reconciled::Rotated => tracing::info!("the output file was rotated since the last run"),
        Reconciled::New | Reconciled::Continued | Reconciled::Unconfirmed | Reconciled::Shared => {}
    }
    let keep_uncommitted = reconciled.keeps_uncommitted();
    let seen = Seen::open(
        &settings.path,
        state.seen,
        keep_uncommitted,
        settings.dedup_capacity,
    )?;
    Ok((
        Some(Checkpointing {
            file,
            state,
            _lock: lock,
        }),
        sink,
        seen,
    ))
}
