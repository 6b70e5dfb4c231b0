/// A `fileDetails` entry written by hand (``JSONWriter``): a tracker writes
/// one for every content it is asked about and each new holder, and
/// Foundation's encoder made that the costliest step of a `details` miss.
extension FileDetail {
    /// This entry's JSON with the download id left empty, cut where the id
    /// goes: `head` ends with `"downloadID":"` and `tail` starts with the
    /// id's closing quote, so an id (plain text) can be put in between.
    /// Keys are sorted, as ``ControlMessage`` encodes them; the entry's own
    /// `downloadID` is not written.
    public func encodedAroundDownloadID() -> (head: [UInt8], tail: [UInt8]) {
        var json = JSONWriter(capacity: 384 + holders.count * 160 + (manifest?.digests.utf8.count ?? 0))
        json.beginObject()
        if let chunkCount {
            json.member("chunkCount")
            json.integer(chunkCount)
        }
        if let completeHolders {
            json.member("completeHolders")
            json.integer(completeHolders)
        }
        json.member("contentID")
        json.plainString(contentID.hex.utf8)
        json.member("downloadID")
        json.string("")
        let cut = json.bytes.count - 1
        if let firstSharedBy {
            json.member("firstSharedBy")
            json.string(firstSharedBy)
        }
        json.member("holders")
        json.beginArray()
        for holder in holders { holder.write(to: &json) }
        json.endArray()
        if let manifest {
            json.member("manifest")
            json.beginObject()
            json.member("chunkSize")
            json.integer(manifest.chunkSize)
            json.member("digests")
            json.base64(manifest.digests)
            json.member("fileSize")
            json.integer(manifest.fileSize)
            json.endObject()
        }
        if let moreHolders {
            json.member("moreHolders")
            json.integer(moreHolders)
        }
        json.member("name")
        json.string(name)
        if let partialHolders {
            json.member("partialHolders")
            json.integer(partialHolders)
        }
        if let since {
            json.member("since")
            json.number(since)
        }
        if let size {
            json.member("size")
            json.integer(size)
        }
        json.endObject()
        return (Array(json.bytes[..<cut]), Array(json.bytes[cut...]))
    }
}

extension Holder {
    fileprivate func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("bytesServed")
        json.integer(bytesServed)
        if let chunks {
            json.member("chunks")
            json.base64(chunks)
        }
        json.member("countDownloads")
        json.integer(countDownloads)
        json.member("countFailures")
        json.integer(countFailures)
        if let gained {
            json.member("gained")
            json.beginArray()
            for index in gained { json.integer(index) }
            json.endArray()
        }
        json.member("host")
        json.string(host)
        if let keyFingerprint {
            json.member("keyFingerprint")
            json.string(keyFingerprint)
        }
        if let mapVersion {
            json.member("mapVersion")
            json.integer(mapVersion)
        }
        json.member("port")
        json.integer(port)
        json.member("user")
        json.string(user)
        json.endObject()
    }
}
