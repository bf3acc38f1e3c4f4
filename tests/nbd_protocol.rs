//! The NBD server against a raw-socket client written from the spec: the
//! handshake (every option, meta contexts, info items), every command and
//! its flags (FUA, NO_HOLE, DF, REQ_ONE, FAST_ZERO), structured and simple
//! replies, the spec's errors for misbehaving requests (bad magic,
//! truncated and oversized requests, unknown options and commands, abrupt
//! disconnects), and durability of FLUSH/FUA across connections.

mod nbd_support;

use cowsnap::storage::sim::SimDisk;
use nbd_support::*;
use std::io::{Read, Write};

// ---------------------------------------------------------------------------
// Handshake.

#[test]
fn unknown_client_flags_drop_the_connection() {
    let fx = Fixture::new();
    let mut c = Client::greet_with(&fx.addr(), 1 | 0x80);
    c.assert_closed();
    fx.assert_others_work();
}

#[test]
fn bad_option_magic_drops_only_that_connection() {
    let fx = Fixture::new();
    let mut bystander = Client::open(&fx.addr(), "other");
    let mut c = Client::greet(&fx.addr());
    c.s.write_all(b"NOTMAGIC\0\0\0\x07\0\0\0\0").unwrap();
    c.assert_closed();
    assert_eq!(bystander.write(0, &[7; 512]), 0);
    fx.assert_others_work();
}

#[test]
fn unknown_options_are_unsupported_and_negotiation_continues() {
    let fx = Fixture::new();
    let mut c = Client::greet(&fx.addr());
    let r = c.option(0xdead, b"whatever");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, REP_ERR_UNSUP);
    // STARTTLS: no TLS here, said plainly.
    assert_eq!(c.option(5, &[])[0].0, REP_ERR_UNSUP);
    assert!(c.go("vol").is_ok());
    assert_eq!(c.write(0, b"still fine"), 0);
}

#[test]
fn malformed_option_payloads_are_invalid() {
    let fx = Fixture::new();
    let mut c = Client::greet(&fx.addr());
    assert_eq!(c.option(OPT_LIST, b"junk")[0].0, REP_ERR_INVALID);
    // GO whose name length runs past the option.
    let mut d = 200u32.to_be_bytes().to_vec();
    d.extend_from_slice(b"vol\0\0");
    assert_eq!(c.option(OPT_GO, &d)[0].0, REP_ERR_INVALID);
    // SET_META_CONTEXT before structured replies.
    assert_eq!(c.set_meta("vol")[0].0, REP_ERR_INVALID);
    assert!(c.go("vol").is_ok());
}

#[test]
fn an_oversized_option_drops_the_connection_without_reading_it() {
    let fx = Fixture::new();
    let mut c = Client::greet(&fx.addr());
    let mut h = b"IHAVEOPT".to_vec();
    h.extend_from_slice(&OPT_GO.to_be_bytes());
    h.extend_from_slice(&u32::MAX.to_be_bytes());
    c.s.write_all(&h).unwrap();
    c.assert_closed();
    fx.assert_others_work();
}

#[test]
fn unknown_exports_and_foreign_snapshots_are_unknown() {
    let fx = Fixture::new();
    let snap = fx.snapshot();
    let mut c = Client::greet(&fx.addr());
    for name in [
        "nope".to_string(),
        "".to_string(),
        format!("other@{snap}"),
        format!("vol@+{snap}"),
        // Leading zeros: each snapshot has one export name.
        format!("vol@0{snap}"),
        format!("vol@00{snap}"),
        "vol@99999".to_string(),
    ] {
        let (t, msg) = c.go(&name).unwrap_err();
        assert_eq!(t, REP_ERR_UNKNOWN, "{name:?}");
        assert!(!msg.is_empty(), "a message for {name:?}");
    }
    let (_, flags) = c.go(&format!("vol@{snap}")).unwrap();
    assert_ne!(flags & TF_READ_ONLY, 0);
}

#[test]
fn list_shows_volumes_and_snapshots() {
    let fx = Fixture::new();
    let snap = fx.snapshot();
    let mut c = Client::greet(&fx.addr());
    let replies = c.option(OPT_LIST, &[]);
    assert_eq!(replies.last().unwrap().0, REP_ACK);
    let names: Vec<String> = replies
        .iter()
        .filter(|(t, _)| *t == REP_SERVER)
        .map(|(_, d)| String::from_utf8(d[4..4 + be32(d) as usize].to_vec()).unwrap())
        .collect();
    assert!(names.contains(&"vol".to_string()), "{names:?}");
    assert!(names.contains(&"other".to_string()), "{names:?}");
    assert!(names.contains(&format!("vol@{snap}")), "{names:?}");
    assert_eq!(c.option(OPT_ABORT, &[])[0].0, REP_ACK);
    c.assert_closed();
}

#[test]
fn old_style_export_name_works_and_unknown_names_hang_up() {
    let fx = Fixture::new();
    // Without NO_ZEROES: size, flags, then 124 zero bytes.
    let mut c = Client::greet_with(&fx.addr(), 1);
    c.send_option(OPT_EXPORT_NAME, b"vol");
    let mut r = [0u8; 134];
    c.s.read_exact(&mut r).unwrap();
    assert_eq!(be64(&r), VOL_SIZE);
    assert_eq!(u16::from_be_bytes([r[8], r[9]]) & TF_READ_ONLY, 0);
    assert!(r[10..].iter().all(|&b| b == 0));
    assert_eq!(c.write(4096, &[9; 100]), 0);
    assert_eq!(c.read(4096, 100), vec![9; 100]);

    let mut bad = Client::greet(&fx.addr());
    bad.send_option(OPT_EXPORT_NAME, b"missing");
    bad.assert_closed();
}

// ---------------------------------------------------------------------------
// Transmission.

#[test]
fn byte_granular_io_round_trips_with_simple_and_structured_replies() {
    let fx = Fixture::new();
    let data = pattern(0x5a, 777);
    let mut s = Client::open_simple(&fx.addr(), "vol");
    assert_eq!(s.write(12_345, &data), 0);
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.read(12_345, 777), data);
    assert_eq!(s.read(12_344, 779)[1..778], data[..]);
    // A zero-length read is answered without data.
    let a = c.call(READ, 0, 0, 0, &[]);
    assert_eq!((a.errno, a.data.len()), (0, 0));
}

#[test]
fn writes_to_a_snapshot_are_eperm_and_their_payload_is_skipped() {
    let fx = Fixture::new();
    let snap = fx.snapshot();
    let mut c = Client::open(&fx.addr(), &format!("vol@{snap}"));
    assert_eq!(c.write(0, &[1; 4096]), EPERM);
    assert_eq!(c.call(TRIM, 0, 0, 4096, &[]).errno, EPERM);
    assert_eq!(c.call(WRITE_ZEROES, 0, 0, 4096, &[]).errno, EPERM);
    // The connection stays in step: the payload was not taken as a request.
    assert_eq!(c.read(0, 4096), vec![0; 4096]);
    assert_eq!(c.call(FLUSH, 0, 0, 0, &[]).errno, 0);
}

#[test]
fn out_of_range_requests_get_the_specs_errors() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.call(READ, 0, VOL_SIZE - 10, 11, &[]).errno, EINVAL);
    assert_eq!(c.write(VOL_SIZE - 10, &[1; 11]), ENOSPC);
    assert_eq!(c.call(WRITE_ZEROES, 0, VOL_SIZE, 1, &[]).errno, ENOSPC);
    assert_eq!(c.call(TRIM, 0, u64::MAX, 2, &[]).errno, EINVAL);
    assert_eq!(c.call(BLOCK_STATUS, 0, VOL_SIZE, 1, &[]).errno, EINVAL);
    assert_eq!(c.call(FLUSH, 0, 1, 0, &[]).errno, EINVAL);
    assert_eq!(c.write(VOL_SIZE - 10, &[2; 10]), 0);
    assert_eq!(c.read(VOL_SIZE - 10, 10), vec![2; 10]);
}

#[test]
fn requests_over_32_mib_are_refused_and_the_connection_survives() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    let over = (32 << 20) + 1;
    assert_eq!(c.call(READ, 0, 0, over, &[]).errno, EINVAL);
    // The payload is read past, so the next request is understood.
    let payload = vec![0xee; over as usize];
    assert_eq!(c.call(WRITE, 0, 0, over, &payload).errno, EINVAL);
    assert_eq!(c.read(0, 16), vec![0; 16]);

    // A 4 GiB write that never comes: the client leaves mid-payload.
    let mut liar = Client::open(&fx.addr(), "vol");
    liar.send(WRITE, 0, 1, 0, u32::MAX, &[1; 4096]);
    drop(liar);
    assert_eq!(c.read(0, 16), vec![0; 16]);
    fx.assert_others_work();
}

#[test]
fn unknown_commands_and_stray_flags_are_einval() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.call(5, 0, 0, 4096, &[]).errno, EINVAL);
    assert_eq!(c.call(42, 0, 0, 0, &[]).errno, EINVAL);
    assert_eq!(c.call(READ, FLAG_NO_HOLE, 0, 4096, &[]).errno, EINVAL);
    assert_eq!(c.call(FLUSH, 0x40, 0, 0, &[]).errno, EINVAL);
    assert_eq!(c.read(0, 4), vec![0; 4]);
}

#[test]
fn a_bad_request_magic_or_truncated_request_ends_only_that_connection() {
    let fx = Fixture::new();
    let mut bystander = Client::open(&fx.addr(), "vol");
    let mut c = Client::open(&fx.addr(), "vol");
    c.s.write_all(&[0xff; 28]).unwrap();
    c.assert_closed();

    let mut t = Client::open(&fx.addr(), "vol");
    t.s.write_all(&0x2560_9513u32.to_be_bytes()).unwrap();
    t.s.write_all(&[0; 10]).unwrap();
    drop(t);
    assert_eq!(bystander.write(0, &[4; 4096]), 0);
    assert_eq!(bystander.read(0, 4096), vec![4; 4096]);
    fx.assert_others_work();
}

#[test]
fn a_client_that_leaves_mid_write_loses_only_that_write() {
    let fx = Fixture::new();
    let mut bystander = Client::open(&fx.addr(), "vol");
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.write(0, &pattern(1, 65536)), 0);
    // Half of a 64 KiB write, then gone.
    c.send(WRITE, 0, 99, 65536, 65536, &pattern(2, 32768));
    drop(c);
    // Its acknowledged write stands; the torn one was never applied.
    assert_eq!(bystander.read(0, 65536), pattern(1, 65536));
    assert_eq!(bystander.read(65536, 65536), vec![0; 65536]);
    assert_eq!(bystander.write(65536, &[8; 512]), 0);
}

#[test]
fn many_requests_in_flight_are_each_answered_once() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    let depth = 48u64;
    for i in 0..depth {
        c.send(WRITE, 0, 1000 + i, i * 8192, 8192, &pattern(i as u8, 8192));
    }
    let mut seen: Vec<u64> = (0..depth)
        .map(|_| c.answer())
        .map(|a| {
            assert_eq!(a.errno, 0);
            a.cookie
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1000..1000 + depth).collect::<Vec<_>>());
    for i in 0..depth {
        c.send(READ, 0, 2000 + i, i * 8192, 8192, &[]);
    }
    for _ in 0..depth {
        let a = c.answer();
        let i = a.cookie - 2000;
        assert_eq!(a.data, pattern(i as u8, 8192), "read {i}");
    }
}

#[test]
fn trim_and_write_zeroes_free_blocks_and_read_as_zeros() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.write(0, &pattern(3, 256 * 1024)), 0);
    let allocated = || fx.pool.volume_info("vol").unwrap().allocated_bytes;
    assert_eq!(allocated(), 256 * 1024);
    assert_eq!(c.call(TRIM, FLAG_FUA, 0, 64 * 1024, &[]).errno, 0);
    assert_eq!(
        c.call(WRITE_ZEROES, FLAG_NO_HOLE, 64 * 1024, 64 * 1024, &[])
            .errno,
        0
    );
    // Unaligned: whole blocks inside are freed, the edges zeroed.
    assert_eq!(
        c.call(WRITE_ZEROES, 0, 128 * 1024 + 100, 8192, &[]).errno,
        0
    );
    assert_eq!(c.read(0, 128 * 1024), vec![0; 128 * 1024]);
    let edge = c.read(128 * 1024, 12288);
    assert_eq!(
        edge[..100],
        pattern(3, 256 * 1024)[128 * 1024..128 * 1024 + 100]
    );
    assert!(edge[100..8292].iter().all(|&b| b == 0));
    assert_eq!(allocated(), 256 * 1024 - 128 * 1024 - 4096);
}

#[test]
fn block_status_reports_holes_and_data() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.write(3 * 4096, &[1; 2 * 4096]), 0);
    let a = c.call(BLOCK_STATUS, 0, 0, 8 * 4096, &[]);
    assert_eq!(a.errno, 0);
    assert_eq!(a.extents, vec![(3 * 4096, 3), (2 * 4096, 0), (3 * 4096, 3)]);
    let one = c.call(BLOCK_STATUS, FLAG_REQ_ONE, 4096, 8 * 4096, &[]);
    assert_eq!(one.extents, vec![(2 * 4096, 3)]);

    // Without base:allocation selected, block status is refused.
    let mut plain = Client::greet(&fx.addr());
    plain.structured_replies();
    plain.go("vol").unwrap();
    assert_eq!(plain.call(BLOCK_STATUS, 0, 0, 4096, &[]).errno, EINVAL);
}

// ---------------------------------------------------------------------------
// Durability, proven on a simulated disk that loses what was not synced.

#[test]
fn a_fua_write_is_durable_when_acknowledged_and_a_plain_one_is_not() {
    let disk = SimDisk::new();
    let fx = Fixture::on_sim(&disk);
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.write(0, &pattern(6, 8192)), 0);
    // Not flushed: a power cut now loses it (the simulation is not lenient).
    assert_eq!(read_after_crash(&disk, 0, 0, 8192), vec![0; 8192]);
    let data = pattern(7, 8192);
    assert_eq!(c.call(WRITE, FLAG_FUA, 65536, 8192, &data).errno, 0);
    for seed in 0..6 {
        assert_eq!(
            read_after_crash(&disk, seed, 65536, 8192),
            data,
            "seed {seed}"
        );
    }
}

#[test]
fn a_flush_covers_writes_acknowledged_on_other_connections() {
    let disk = SimDisk::new();
    let fx = Fixture::on_sim(&disk);
    let mut writer = Client::open(&fx.addr(), "vol");
    let mut flusher = Client::open(&fx.addr(), "vol");
    let (_, flags) = Client::greet(&fx.addr()).go("vol").unwrap();
    assert_ne!(flags & TF_CAN_MULTI_CONN, 0, "multi-conn is advertised");
    let data = pattern(9, 12288);
    assert_eq!(writer.write(4096, &data), 0);
    assert_eq!(flusher.call(FLUSH, 0, 0, 0, &[]).errno, 0);
    for seed in 0..6 {
        assert_eq!(
            read_after_crash(&disk, seed, 4096, 12288),
            data,
            "seed {seed}"
        );
    }
}

// ---------------------------------------------------------------------------
// Handshake options and info items.

#[test]
fn info_describes_an_export_without_opening_it() {
    let fx = Fixture::new();
    let snap = fx.snapshot();
    let mut c = Client::greet(&fx.addr());
    let asked = [INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE];
    let r = c.option(OPT_INFO, &Client::info_payload("vol", &asked));
    assert_eq!(r.last().unwrap().0, REP_ACK);
    let (size, flags) = export_info(&r).expect("NBD_INFO_EXPORT");
    assert_eq!(size, VOL_SIZE);
    assert_eq!(flags & (TF_HAS_FLAGS | TF_READ_ONLY), TF_HAS_FLAGS);
    let item = |id: u16| {
        r.iter()
            .find(|(t, d)| *t == REP_INFO && be16(d) == id)
            .map(|(_, d)| d[2..].to_vec())
            .unwrap_or_else(|| panic!("info item {id}"))
    };
    assert_eq!(item(INFO_NAME), b"vol");
    let described = String::from_utf8(item(INFO_DESCRIPTION)).unwrap();
    assert!(described.contains("read-write"), "{described}");
    // Minimum 1 (byte-granular), preferred the pool's block, maximum 32 MiB.
    let sizes = item(INFO_BLOCK_SIZE);
    assert_eq!(sizes.len(), 12);
    assert_eq!(
        (be32(&sizes), be32(&sizes[4..]), be32(&sizes[8..])),
        (1, BS, 32 << 20)
    );
    // INFO opens nothing: no read-write connection, and negotiation goes on.
    assert_eq!(fx.control.rw_connections("vol"), 0);
    let ro = c.option(OPT_INFO, &Client::info_payload(&format!("vol@{snap}"), &[]));
    assert_ne!(export_info(&ro).unwrap().1 & TF_READ_ONLY, 0);
    assert_eq!(
        c.option(OPT_INFO, &Client::info_payload("nope", &[]))[0].0,
        REP_ERR_UNKNOWN
    );
    fx.control.disable_rw("other");
    let (t, msg) = {
        let r = c.option(OPT_INFO, &Client::info_payload("other", &[]));
        (r[0].0, String::from_utf8_lossy(&r[0].1).into_owned())
    };
    assert_eq!(t, REP_ERR_POLICY, "{msg}");
    assert_eq!(c.go("vol").unwrap().0, VOL_SIZE);
    assert_eq!(fx.control.rw_connections("vol"), 1);
}

#[test]
fn go_sends_the_block_size_even_unasked() {
    let fx = Fixture::new();
    let mut c = Client::greet(&fx.addr());
    let r = c.option(OPT_GO, &Client::info_payload("vol", &[]));
    let sizes = r
        .iter()
        .find(|(t, d)| *t == REP_INFO && be16(d) == INFO_BLOCK_SIZE)
        .map(|(_, d)| d[2..].to_vec())
        .expect("NBD_INFO_BLOCK_SIZE");
    assert_eq!(
        (be32(&sizes), be32(&sizes[4..]), be32(&sizes[8..])),
        (1, BS, 32 << 20)
    );
    assert_eq!(r.last().unwrap().0, REP_ACK);
}

/// The contexts a LIST_META_CONTEXT reply offers: (id, name).
fn listed(c: &mut Client, export: &str, queries: &[&str]) -> Result<Vec<(u32, String)>, u32> {
    let r = c.option(
        OPT_LIST_META_CONTEXT,
        &Client::meta_payload(export, queries),
    );
    let (last, _) = r.last().unwrap();
    if *last != REP_ACK {
        return Err(*last);
    }
    Ok(r.iter()
        .filter(|(t, _)| *t == REP_META_CONTEXT)
        .map(|(_, d)| (be32(d), String::from_utf8(d[4..].to_vec()).unwrap()))
        .collect())
}

#[test]
fn list_meta_context_offers_base_allocation_and_selects_nothing() {
    let fx = Fixture::new();
    let mut c = Client::greet(&fx.addr());
    // Before structured replies, meta contexts are refused.
    assert_eq!(listed(&mut c, "vol", &[]), Err(REP_ERR_INVALID));
    c.structured_replies();
    let base = vec![(0, "base:allocation".to_string())];
    // Zero queries list everything; the id is reserved (zero) in LIST replies.
    assert_eq!(listed(&mut c, "vol", &[]).unwrap(), base);
    assert_eq!(
        listed(&mut c, "vol", &["base:"]).unwrap(),
        base,
        "namespace wildcard"
    );
    assert_eq!(listed(&mut c, "vol", &["base:allocation"]).unwrap(), base);
    // Unknown namespaces are ignored, leaving just the ACK.
    assert_eq!(listed(&mut c, "vol", &["qemu:dirty-bitmap:x"]).unwrap(), []);
    assert_eq!(listed(&mut c, "nope", &[]), Err(REP_ERR_UNKNOWN));
    // SET takes full names only: the wildcard selects nothing.
    let set = c.option(
        OPT_SET_META_CONTEXT,
        &Client::meta_payload("vol", &["base:"]),
    );
    assert_eq!(set.iter().map(|r| r.0).collect::<Vec<_>>(), [REP_ACK]);
    // Listing selected nothing, so block status stays refused.
    c.go("vol").unwrap();
    assert_eq!(c.call(BLOCK_STATUS, 0, 0, 4096, &[]).errno, EINVAL);
}

#[test]
fn a_context_set_on_one_export_does_not_carry_to_another() {
    let fx = Fixture::new();
    let mut c = Client::greet(&fx.addr());
    c.structured_replies();
    let set = c.set_meta("vol");
    assert_eq!(set[0].0, REP_META_CONTEXT);
    let id = be32(&set[0].1);
    assert_ne!(id, 0, "SET gives a real id");
    c.go("other").unwrap();
    let a = c.call(BLOCK_STATUS, 0, 0, 4096, &[]);
    assert_eq!(a.errno, EINVAL);
    assert!(a.message.contains("base:allocation"), "{}", a.message);
    // On the export it was set for, the same steps work.
    let mut d = Client::greet(&fx.addr());
    d.structured_replies();
    d.set_meta("vol");
    d.go("vol").unwrap();
    let a = d.call(BLOCK_STATUS, 0, 0, 4096, &[]);
    assert_eq!((a.errno, a.chunks), (0, vec![CHUNK_BLOCK_STATUS]));
}

#[test]
fn export_name_with_no_zeroes_replies_ten_bytes() {
    let fx = Fixture::new();
    // Client flags 3: fixed newstyle and no zeroes.
    let mut c = Client::greet_with(&fx.addr(), 3);
    c.send_option(OPT_EXPORT_NAME, b"vol");
    let mut r = [0u8; 10];
    c.s.read_exact(&mut r).unwrap();
    assert_eq!(be64(&r), VOL_SIZE);
    let flags = be16(&r[8..]);
    assert_eq!(flags & (TF_HAS_FLAGS | TF_READ_ONLY), TF_HAS_FLAGS);
    // The very next bytes answer a request: no 124 zero bytes came first.
    c.s.write_all(&0x2560_9513u32.to_be_bytes()).unwrap();
    c.s.write_all(&[0, 0, 0, READ as u8]).unwrap();
    c.s.write_all(&77u64.to_be_bytes()).unwrap();
    c.s.write_all(&0u64.to_be_bytes()).unwrap();
    c.s.write_all(&4u32.to_be_bytes()).unwrap();
    let mut reply = [0u8; 20];
    c.s.read_exact(&mut reply).unwrap();
    assert_eq!(be32(&reply), 0x6744_6698, "simple reply magic right away");
    assert_eq!((be32(&reply[4..]), be64(&reply[8..])), (0, 77));
    assert_eq!(reply[16..], [0; 4]);
}

// ---------------------------------------------------------------------------
// Command flags and structured replies.

#[test]
fn df_reads_are_one_data_chunk_and_need_structured_replies() {
    let fx = Fixture::new();
    let mut c = Client::greet(&fx.addr());
    c.structured_replies();
    let (_, flags) = c.go("vol").unwrap();
    assert_ne!(
        flags & TF_SEND_DF,
        0,
        "DF is advertised with structured replies"
    );
    let data = pattern(0x21, 300_000);
    assert_eq!(c.write(100_000, &data), 0);
    // Data and holes alike come as one OFFSET_DATA chunk.
    let a = c.call(READ, FLAG_DF, 0, 1 << 20, &[]);
    assert_eq!((a.errno, a.chunks.clone()), (0, vec![CHUNK_OFFSET_DATA]));
    assert_eq!(a.data[100_000..400_000], data[..]);
    assert!(a.data[..100_000].iter().all(|&b| b == 0));
    // Without structured replies, DF is neither advertised nor accepted.
    let mut s = Client::greet(&fx.addr());
    let (_, flags) = s.go("vol").unwrap();
    assert_eq!(flags & TF_SEND_DF, 0);
    assert_eq!(s.call(READ, FLAG_DF, 0, 4096, &[]).errno, EINVAL);
}

#[test]
fn fast_zero_is_refused_where_zeroing_would_copy_data() {
    let fx = Fixture::new();
    let snap = fx.snapshot();
    let mut c = Client::greet(&fx.addr());
    c.structured_replies();
    let (_, flags) = c.go("vol").unwrap();
    assert_ne!(flags & TF_SEND_FAST_ZERO, 0);
    let data = pattern(0x44, 3 * BS as usize);
    assert_eq!(c.write(0, &data), 0);
    let allocated = || fx.pool.volume_info("vol").unwrap().allocated_bytes;
    // A partial first block over data: a read-modify-write, so ENOTSUP,
    // and nothing changes.
    let a = c.call(WRITE_ZEROES, FLAG_FAST_ZERO, 100, BS, &[]);
    assert_eq!(a.errno, ENOTSUP);
    assert!(a.message.contains("fast zero"), "{}", a.message);
    // A partial last block over data, likewise.
    assert_eq!(
        c.call(WRITE_ZEROES, FLAG_FAST_ZERO, 0, BS + 1, &[]).errno,
        ENOTSUP
    );
    assert_eq!(c.read(0, 3 * BS), data);
    // Whole blocks are only unmapped: fast, and done.
    assert_eq!(
        c.call(WRITE_ZEROES, FLAG_FAST_ZERO, u64::from(BS), BS, &[])
            .errno,
        0
    );
    assert_eq!(c.read(u64::from(BS), BS), vec![0; BS as usize]);
    assert_eq!(allocated(), 2 * u64::from(BS));
    // Partial blocks over holes cost nothing either.
    let hole = 100 * u64::from(BS);
    assert_eq!(
        c.call(WRITE_ZEROES, FLAG_FAST_ZERO, hole + 10, 3 * BS, &[])
            .errno,
        0
    );
    // Without FAST_ZERO the slow case is not refused (the spec forbids it).
    assert_eq!(c.call(WRITE_ZEROES, 0, 100, BS, &[]).errno, 0);
    assert!(c.read(100, BS).iter().all(|&b| b == 0));
    assert_eq!(c.read(0, 100), data[..100]);
    // A snapshot export refuses any write first.
    let mut ro = Client::open(&fx.addr(), &format!("vol@{snap}"));
    assert_eq!(
        ro.call(WRITE_ZEROES, FLAG_FAST_ZERO, 0, BS, &[]).errno,
        EPERM
    );
}

#[test]
fn structured_errors_carry_a_message_for_the_user() {
    let fx = Fixture::new();
    let snap = fx.snapshot();
    let mut c = Client::open(&fx.addr(), "vol");
    let a = c.call(READ, 0, VOL_SIZE - 1, 2, &[]);
    assert_eq!((a.errno, a.chunks.clone()), (EINVAL, vec![CHUNK_ERROR]));
    assert!(a.message.contains("past the end"), "{:?}", a.message);
    let mut ro = Client::open(&fx.addr(), &format!("vol@{snap}"));
    let a = ro.call(WRITE, 0, 0, 4, &[1; 4]);
    assert_eq!(a.errno, EPERM);
    assert!(a.message.contains("read-only"), "{:?}", a.message);
    // Simple replies carry the errno alone.
    let mut s = Client::open_simple(&fx.addr(), "vol");
    let a = s.call(READ, 0, VOL_SIZE - 1, 2, &[]);
    assert_eq!((a.errno, a.message.as_str()), (EINVAL, ""));
}
