"""Run as a script (`python -m tests.transport.upload_without_aiohttp DIR`): one snapshot
upload through a fresh process's peer port, printing the answer's status line and whether
aiohttp was imported. A module of its own because every other transport test's process
has imported aiohttp (the harness serves it); see test_peerport_snapshots.py."""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import zlib

from lab.procs import free_ports
from node.raft.messages import ConfState, Message, MessageType, Snapshot, SnapshotMetadata
from node.transport import Transport, httphead, wire
from node.transport.codec import encode
from node.transport.peerport import PeerPort

CLUSTER_ID = 0xC0FFEE


async def upload_once(snapshot_dir: str) -> dict[str, object]:
    port_1, port_2 = free_ports(2, "127.0.0.1")  # member 1 never listens
    delivered: list[str] = []
    transport = Transport(
        2,
        CLUSTER_ID,
        {1: f"http://127.0.0.1:{port_1}", 2: f"http://127.0.0.1:{port_2}"},
        lambda _msg: None,
        lambda _msg, path: delivered.append(path),
        None,
        None,
        snapshot_dir,
    )
    transport.defer_probing()  # as a member starts (serve.py): no prober yet
    peer_port = PeerPort(transport)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(peer_port.protocol, "127.0.0.1", port_2)
    await transport.start()
    try:
        image = b"image" * 1000
        meta = SnapshotMetadata(index=9, term=1, conf_state=ConfState(voters=(1, 2)))
        msg = Message(MessageType.MsgSnap, to=2, frm=1, term=1, snapshot=Snapshot(meta))
        body = encode(msg) + image + struct.pack("<I", zlib.crc32(image))
        headers = {
            **wire.stream_headers(1, 2, CLUSTER_ID),
            wire.HDR_SNAPSHOT_SIZE: str(len(image)),
            "Content-Length": str(len(body)),
        }
        reader, writer = await asyncio.open_connection("127.0.0.1", port_2)
        writer.write(httphead.request("POST", wire.SNAPSHOT_PATH, "x", headers) + body)
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
    finally:
        server.close()
        await transport.stop()
    return {
        "status": answer.split(b"\r\n", 1)[0].decode(),
        "delivered": len(delivered),
        "aiohttp": "aiohttp" in sys.modules,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(upload_once(sys.argv[1]))))
