//! The recency list of the hand-written LRU caches (route cache, model store): a doubly
//! linked list threaded through the entries of a slab by `u32` index, most recently used at
//! the head, the next to evict at the tail. One implementation for both caches.

/// End of the list.
pub const NIL: u32 = u32::MAX;

/// An entry's neighbours: towards the most (`prev`) and the least (`next`) recently used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Links {
    pub prev: u32,
    pub next: u32,
}

impl Links {
    /// Not in the list.
    pub const NONE: Links = Links {
        prev: NIL,
        next: NIL,
    };
}

/// A slab entry that carries its [`Links`].
pub trait Linked {
    fn links(&self) -> Links;
    fn links_mut(&mut self) -> &mut Links;
}

/// The ends of a list threaded through a slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recency {
    /// Most recently used.
    pub head: u32,
    /// Least recently used: the next to evict.
    pub tail: u32,
}

impl Recency {
    /// An empty list.
    pub const EMPTY: Recency = Recency {
        head: NIL,
        tail: NIL,
    };

    /// Takes entry `i` out of the list (its own links are left as they were).
    pub fn unlink<T: Linked>(&mut self, slab: &mut [T], i: u32) {
        let Links { prev, next } = slab[i as usize].links();
        match prev {
            NIL => self.head = next,
            p => slab[p as usize].links_mut().next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => slab[n as usize].links_mut().prev = prev,
        }
    }

    /// Puts entry `i` (not in the list) at the head.
    pub fn link_front<T: Linked>(&mut self, slab: &mut [T], i: u32) {
        let head = self.head;
        *slab[i as usize].links_mut() = Links {
            prev: NIL,
            next: head,
        };
        match head {
            NIL => self.tail = i,
            h => slab[h as usize].links_mut().prev = i,
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Linked for Links {
        fn links(&self) -> Links {
            *self
        }
        fn links_mut(&mut self) -> &mut Links {
            self
        }
    }

    fn order(list: &Recency, slab: &[Links]) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = list.head;
        while i != NIL {
            out.push(i);
            i = slab[i as usize].next;
        }
        out
    }

    #[test]
    fn front_unlink_and_ends() {
        let mut slab = vec![Links::NONE; 4];
        let mut list = Recency::EMPTY;
        for i in 0..4 {
            list.link_front(&mut slab, i);
        }
        assert_eq!(order(&list, &slab), vec![3, 2, 1, 0]);
        assert_eq!(list.tail, 0);
        // Middle, head and tail.
        list.unlink(&mut slab, 2);
        assert_eq!(order(&list, &slab), vec![3, 1, 0]);
        list.unlink(&mut slab, 3);
        list.unlink(&mut slab, 0);
        assert_eq!(order(&list, &slab), vec![1]);
        assert_eq!((list.head, list.tail), (1, 1));
        list.link_front(&mut slab, 0);
        assert_eq!(order(&list, &slab), vec![0, 1]);
        assert_eq!(list.tail, 1);
        assert_eq!(slab[1].prev, 0, "backward links kept too");
        list.unlink(&mut slab, 0);
        list.unlink(&mut slab, 1);
        assert_eq!(list, Recency::EMPTY);
    }
}
