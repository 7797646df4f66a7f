use super::*;
use tokio::io::AsyncWriteExt;

fn peer() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

#[tokio::test]
async fn a_vetted_connection_replays_its_preface_then_its_bytes() {
    let (mut client, server) = tokio::io::duplex(1024);
    let (tx, mut rx) = mpsc::channel(1);
    client.write_all(PREFACE).await.unwrap();
    client.write_all(b"\0\0\0\x04").await.unwrap();
    drop(client);
    hand_over(server, peer(), tx).await;
    let mut vetted = rx.recv().await.expect("handed over");
    let mut all = Vec::new();
    vetted.read_to_end(&mut all).await.unwrap();
    assert_eq!(&all[..PREFACE.len()], PREFACE);
    assert_eq!(&all[PREFACE.len()..], b"\0\0\0\x04");
}

#[tokio::test]
async fn anything_but_the_preface_is_closed_at_its_first_wrong_byte() {
    for bytes in [
        &b"POST /stampede.v1.CoordinatorService/Session HTTP/1.1\r\n"[..],
        &[0x16, 0x03, 0x01, 0x02, 0x00][..],
        &b"PRI * HTTP/1.1"[..],
    ] {
        let (mut client, server) = tokio::io::duplex(1024);
        let (tx, mut rx) = mpsc::channel(1);
        // The client stays open: the wrong byte alone ends the vetting.
        client.write_all(bytes).await.unwrap();
        hand_over(server, peer(), tx).await;
        assert!(rx.recv().await.is_none(), "{bytes:?} handed over");
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_nothing_is_closed_after_the_handshake_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel::<Vetted<TcpStream>>(1);
    tokio::spawn(accept(listener, shutdown.clone(), move |s, p| {
        hand_over(s, p, tx.clone())
    }));
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 1];
    let n = silent.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    assert!(
        started.elapsed() >= HANDSHAKE_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    assert!(rx.try_recv().is_err());
    shutdown.cancel();
}

#[tokio::test]
async fn connections_being_vetted_are_dropped_at_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let (tx, _rx) = mpsc::channel::<Vetted<TcpStream>>(1);
    let accepting = tokio::spawn(accept(listener, shutdown.clone(), move |s, p| {
        hand_over(s, p, tx.clone())
    }));
    let mut held = TcpStream::connect(addr).await.unwrap();
    held.write_all(&PREFACE[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    shutdown.cancel();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(2), held.read(&mut buf))
        .await
        .expect("closed at shutdown, not after the handshake timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    accepting.await.unwrap();
}
