use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::mqttbytes::{self, v4::*};
use crate::{Incoming, MqttState, StateError};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Incoming QoS 0 publishes that were larger than the maximum incoming
/// packet size, read through and dropped instead of ending the connection
/// (an edgeclip patch; see [`crate::MqttOptions::set_drop_oversized_publishes`]).
#[derive(Debug, Default)]
pub struct OversizedPublishes {
    /// How many were dropped.
    pub count: AtomicUsize,
    /// The remaining length of the last one dropped, in bytes.
    pub last_len: AtomicUsize,
}

/// Network transforms packets <-> frames efficiently. It takes
/// advantage of pre-allocation, buffering and vectorization when
/// appropriate to achieve performance
pub struct Network {
    /// Socket for IO
    socket: Box<dyn N>,
    /// Buffered reads
    read: BytesMut,
    /// Maximum packet size
    max_incoming_size: usize,
    /// Maximum readv count
    max_readb_count: usize,
    /// Where oversized QoS 0 publishes are counted, if they are dropped
    /// rather than an error.
    pub(crate) oversized: Option<Arc<OversizedPublishes>>,
    /// Bytes of an oversized publish still to be read and thrown away.
    discarding: usize,
}

impl Network {
    pub fn new(socket: impl N + 'static, max_incoming_size: usize) -> Network {
        let socket = Box::new(socket) as Box<dyn N>;
        Network {
            socket,
            read: BytesMut::with_capacity(10 * 1024),
            max_incoming_size,
            max_readb_count: 10,
            oversized: None,
            discarding: 0,
        }
    }

    /// Throws away buffered bytes of an oversized publish being dropped;
    /// true while more of it is still to come.
    fn discard_buffered(&mut self) -> bool {
        let n = self.discarding.min(self.read.len());
        self.read.advance(n);
        self.discarding -= n;
        self.discarding > 0
    }

    /// Starts dropping the packet at the front of the buffer if it is a
    /// QoS 0 publish too large to take and dropping is asked for: its bytes
    /// are then thrown away as they arrive, never held. A QoS 0 publish needs
    /// no acknowledgement, so the broker cannot tell.
    fn drop_oversized(&mut self, remaining_len: usize) -> bool {
        let Some(oversized) = &self.oversized else { return false };
        let (Some(&byte1), Some(len_len)) = (self.read.first(), remaining_length_len(&self.read[1..])) else {
            return false;
        };
        let qos0_publish = byte1 >> 4 == 3 && byte1 & 0b0110 == 0;
        if !qos0_publish {
            return false;
        }
        oversized.count.fetch_add(1, Ordering::Relaxed);
        oversized.last_len.store(remaining_len, Ordering::Relaxed);
        self.discarding = 1 + len_len + remaining_len;
        true
    }

    /// Reads more than 'required' bytes to frame a packet into self.read buffer
    async fn read_bytes(&mut self, required: usize) -> io::Result<usize> {
        let mut total_read = 0;
        loop {
            let read = self.socket.read_buf(&mut self.read).await?;
            if 0 == read {
                return if self.read.is_empty() {
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "connection closed by peer",
                    ))
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "connection reset by peer",
                    ))
                };
            }

            total_read += read;
            if total_read >= required {
                return Ok(total_read);
            }
        }
    }

    pub async fn read(&mut self) -> io::Result<Incoming> {
        loop {
            let required = match read(&mut self.read, self.max_incoming_size) {
                Ok(packet) => return Ok(packet),
                Err(mqttbytes::Error::InsufficientBytes(required)) => required,
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            };

            // read more packets until a frame can be created. This function
            // blocks until a frame can be created. Use this in a select! branch
            self.read_bytes(required).await?;
        }
    }

    /// Read packets in bulk. This allow replies to be in bulk. This method is used
    /// after the connection is established to read a bunch of incoming packets
    pub async fn readb(&mut self, state: &mut MqttState) -> Result<(), StateError> {
        let mut count = 0;
        loop {
            if self.discarding > 0 && self.discard_buffered() {
                if count > 0 {
                    return Ok(());
                }
                self.read_bytes(1).await?;
                continue;
            }
            match read(&mut self.read, self.max_incoming_size) {
                Ok(packet) => {
                    state.handle_incoming_packet(packet)?;

                    count += 1;
                    if count >= self.max_readb_count {
                        return Ok(());
                    }
                }
                // If some packets are already framed, return those
                Err(mqttbytes::Error::InsufficientBytes(_)) if count > 0 => return Ok(()),
                // Wait for more bytes until a frame can be created
                Err(mqttbytes::Error::InsufficientBytes(required)) => {
                    self.read_bytes(required).await?;
                }
                Err(mqttbytes::Error::PayloadSizeLimitExceeded(len)) if self.drop_oversized(len) => {}
                Err(e) => return Err(StateError::Deserialization(e)),
            };
        }
    }

    pub async fn connect(&mut self, connect: Connect) -> io::Result<usize> {
        let mut write = BytesMut::new();
        let len = match connect.write(&mut write) {
            Ok(size) => size,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        };

        self.socket.write_all(&write[..]).await?;
        Ok(len)
    }

    pub async fn flush(&mut self, write: &mut BytesMut) -> io::Result<()> {
        if write.is_empty() {
            return Ok(());
        }

        self.socket.write_all(&write[..]).await?;
        write.clear();
        Ok(())
    }
}

pub trait N: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T> N for T where T: AsyncRead + AsyncWrite + Send + Unpin {}

/// The number of bytes of the variable-length remaining length at the start
/// of `bytes`, if it is complete.
fn remaining_length_len(bytes: &[u8]) -> Option<usize> {
    bytes.iter().take(4).position(|b| b & 0x80 == 0).map(|i| i + 1)
}
