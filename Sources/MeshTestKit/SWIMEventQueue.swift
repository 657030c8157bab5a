// SWIMEventQueue: the simulator's agenda, a binary min-heap of timed events.
// Ties break by insertion order, so a run is a pure function of its seed.

import MeshBase

/// A min-heap of `(time, order)`-keyed items.
struct SWIMEventQueue<Item> {
    private struct Entry {
        let time: Instant
        let order: UInt64
        let item: Item
        func precedes(_ o: Entry) -> Bool { time < o.time || (time == o.time && order < o.order) }
    }

    private var heap: [Entry] = []
    private var inserted: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var nextTime: Instant? { heap.first?.time }

    mutating func push(_ item: Item, at time: Instant) {
        inserted += 1
        heap.append(Entry(time: time, order: inserted, item: item))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].precedes(heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (time: Instant, item: Item)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, heap[l].precedes(heap[m]) { m = l }
            if r < heap.count, heap[r].precedes(heap[m]) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return (top.time, top.item)
    }
}
